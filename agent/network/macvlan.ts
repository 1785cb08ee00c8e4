// The macvlan driver: each task gets a macvlan link on the host's parent interface (`-o
// parent=eth0`), created straight into the task's namespace, so it sits on the parent's segment
// with an address and MAC of its own. `parent=eth0.10` asks for the 802.1Q sub-interface, created
// when missing (and removed with the network); kernels without 8021q refuse that by name.
import type { MacvlanMode, Netlink } from '../../netlink/index.js';
import { describeNetwork, type NetworkInfo } from './spec.js';

const MODES: readonly MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru'];

export interface MacvlanParent {
  parent: string;
  mode: MacvlanMode;
  /** Set when the parent is an 802.1Q sub-interface "base.id". */
  vlan?: { base: string; id: number };
}

export function macvlanParent(info: NetworkInfo): MacvlanParent {
  const label = `macvlan network ${describeNetwork(info)}`;
  const parent = info.options.parent ?? '';
  if (!parent) throw new Error(`${label}: no parent interface (create it with -o parent=IF)`);
  if (parent.length > 15 || /[\s/:]/.test(parent)) throw new Error(`${label}: invalid parent interface name ${JSON.stringify(parent)}`);
  const modeText = info.options.macvlan_mode || 'bridge';
  if (!(MODES as readonly string[]).includes(modeText)) throw new Error(`${label}: invalid macvlan_mode ${JSON.stringify(modeText)}; valid: ${MODES.join(', ')}`);
  const mode = modeText as MacvlanMode;
  const m = /^(.+)\.(\d+)$/.exec(parent);
  if (!m) return { parent, mode };
  const id = Number(m[2]);
  if (id < 1 || id > 4094) throw new Error(`${label}: invalid VLAN id ${m[2]} in parent ${parent} (1-4094)`);
  return { parent, mode, vlan: { base: m[1]!, id } };
}

/** Makes sure the parent exists; returns the sub-interface's name if it had to be created. */
export async function ensureParent(host: Netlink, info: NetworkInfo, p: MacvlanParent): Promise<string | undefined> {
  const label = `macvlan network ${describeNetwork(info)}`;
  const link = await host.findLink(p.parent);
  if (link) {
    if (!link.up) await host.setUp(link.index);
    return undefined;
  }
  if (!p.vlan) throw new Error(`${label}: parent interface ${p.parent} does not exist`);
  if (!(await host.findLink(p.vlan.base))) throw new Error(`${label}: parent interface ${p.vlan.base} (of ${p.parent}) does not exist`);
  try {
    await host.createLink({ kind: 'vlan', name: p.parent, parent: p.vlan.base, id: p.vlan.id, up: true });
  } catch (err) {
    throw new Error(`${label}: cannot create parent ${p.parent}: ${(err as Error).message}`);
  }
  return p.parent;
}

export async function attachMacvlan(host: Netlink, p: MacvlanParent, v: { taskNetns: string; ifname: string; mac: string }): Promise<void> {
  await host.createLink({ kind: 'macvlan', name: v.ifname, parent: p.parent, mode: p.mode, mac: v.mac, netns: v.taskNetns });
}
