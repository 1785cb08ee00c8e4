// Networks: create (drivers overlay, bridge, macvlan), inspect, list, remove. The subnet checks
// (CIDR syntax, gateway and ip-range inside the subnet, no overlap with another network) are the
// allocator's own, run before the network is stored; the allocator then gives the network its
// subnet and VXLAN id. Removal is refused while a service or a task still uses the network.
import { Network, NetworkSpec } from '../../proto/gen/objects.js';
import type { CreateNetworkRequest, ListNetworksRequest } from '../../proto/gen/control.js';
import { checkNetworkRemovable, validateNetworkSpec } from '../allocator/checks.js';
import { DRIVER_SCOPE, driverName } from '../allocator/network.js';
import { blank, copy } from '../store/blank.js';
import { type ControlContext, idOf } from './context.js';
import { exists, invalid, translated } from './errors.js';
import { applyFilters, checkFilters, matchesLabel } from './filters.js';
import { resolve } from './resolve.js';

/** Docker's rule for network names. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** A Linux interface name: at most 15 bytes, no '/', ':' or white space. */
const INTERFACE_NAME = /^[^/:\s]{1,15}$/;
const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'];
export const MACVLAN_PARENT_OPTION = 'parent';
export const MACVLAN_MODE_OPTION = 'macvlan_mode';

const nameOf = (n: Network): string => n.spec?.annotations?.name ?? '';

/** The checks of a network spec that need nothing but the spec. */
export function validateNetworkBasics(spec: NetworkSpec): void {
  const name = spec.annotations?.name ?? '';
  if (!name) throw invalid('a network needs a name');
  if (!NETWORK_NAME.test(name)) throw invalid(`invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  const driver = driverName(spec);
  const scope = DRIVER_SCOPE[driver];
  if (!scope) throw invalid(`network ${name}: unsupported driver ${JSON.stringify(driver)}; supported: ${Object.keys(DRIVER_SCOPE).join(', ')}`);
  if (spec.scope && spec.scope !== scope) throw invalid(`network ${name}: the ${driver} driver has scope ${scope}, not ${JSON.stringify(spec.scope)}`);
  if (spec.ingress && spec.attachable) throw invalid(`network ${name}: an ingress network cannot be attachable`);
  if (spec.ingress && spec.internal) throw invalid(`network ${name}: an ingress network cannot be internal (the routing mesh must reach it)`);
  const options = spec.driverConfig?.options ?? {};
  if (driver === 'overlay' && 'encrypted' in options) throw invalid(`network ${name}: encrypted overlay networks are not supported`);
  if (driver === 'macvlan') {
    const parent = options[MACVLAN_PARENT_OPTION];
    if (!parent) throw invalid(`network ${name}: a macvlan network needs the host interface it sits on: -o ${MACVLAN_PARENT_OPTION}=eth0 (or eth0.10 for VLAN 10)`);
    if (!INTERFACE_NAME.test(parent)) throw invalid(`network ${name}: invalid parent interface ${JSON.stringify(parent)}: an interface name has 1 to 15 characters, without '/', ':' or spaces`);
    const mode = options[MACVLAN_MODE_OPTION];
    if (mode !== undefined && !MACVLAN_MODES.includes(mode)) throw invalid(`network ${name}: invalid ${MACVLAN_MODE_OPTION} ${JSON.stringify(mode)}: expected ${MACVLAN_MODES.join(', ')}`);
  } else if (MACVLAN_PARENT_OPTION in options) {
    throw invalid(`network ${name}: the ${MACVLAN_PARENT_OPTION} option is for the macvlan driver, not ${driver}`);
  }
}

export async function createNetwork(ctx: ControlContext, req: Pick<CreateNetworkRequest, 'spec'>): Promise<Network> {
  const given = req.spec;
  if (!given) throw invalid('network create needs a network spec');
  validateNetworkBasics(given);
  const spec = copy(NetworkSpec, given);
  spec.scope = DRIVER_SCOPE[driverName(spec)]!;
  if (!spec.driverConfig?.name) spec.driverConfig = { name: driverName(spec), options: spec.driverConfig?.options ?? {} };
  const id = await translated(() =>
    ctx.store.update((tx) => {
      const name = spec.annotations!.name;
      const clash = tx.find('networks', 'name', name)[0];
      if (clash) throw exists(`network with name ${name} already exists (${clash.id})`);
      const existing = tx.all('networks');
      validateNetworkSpec(spec, existing);
      if (driverName(spec) === 'macvlan') {
        // Two macvlan networks on one parent would hand out addresses on the same segment twice.
        const parent = spec.driverConfig!.options[MACVLAN_PARENT_OPTION];
        const other = existing.find((n) => driverName(n.spec) === 'macvlan' && n.spec?.driverConfig?.options?.[MACVLAN_PARENT_OPTION] === parent);
        if (other) throw exists(`network ${nameOf(other)} (${other.id}) is already using parent interface ${parent}`);
      }
      const network = blank(Network, { id: idOf(ctx), spec });
      tx.create('networks', network);
      return network.id;
    }),
  );
  return ctx.store.get('networks', id)!;
}

export function getNetwork(ctx: ControlContext, ref: string): Network {
  return resolve(ctx.store, 'networks', ref);
}

/** `network ls`: filters id and name (any part, as Docker), driver, label, scope. */
export function listNetworks(ctx: ControlContext, req: Pick<ListNetworksRequest, 'filters'>): Network[] {
  checkFilters(req.filters, ['id', 'name', 'driver', 'label', 'scope']);
  const all = ctx.store.all('networks').sort((a, b) => nameOf(a).localeCompare(nameOf(b)) || a.id.localeCompare(b.id));
  return applyFilters(all, req.filters, {
    id: (n, v) => n.id.includes(v),
    name: (n, v) => nameOf(n).includes(v),
    driver: (n, v) => driverName(n.spec) === v,
    label: (n, v) => matchesLabel(n.spec?.annotations?.labels, v),
    scope: (n, v) => (n.spec?.scope || DRIVER_SCOPE[driverName(n.spec)]) === v,
  });
}

/** Refused while a service's spec or a task that has not ended uses it (the ingress network: while services publish ports). */
export async function removeNetwork(ctx: ControlContext, ref: string): Promise<void> {
  await translated(() =>
    ctx.store.update((tx) => {
      const n = resolve(tx, 'networks', ref);
      checkNetworkRemovable(tx, n.id);
      tx.remove('networks', n.id);
    }),
  );
}
