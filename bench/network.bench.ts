// `npm run bench -- network [--tasks N] [--peers N]`
//
// The network drivers in a private world (an underlay namespace with a bridge, two host
// namespaces on it; nothing touches the machine's own network), with the embedded KV:
//   - prepare and release of one overlay task (namespace, veth into the sandbox, gateway-bridge
//     veth, peer-table entry), tasks prepared one after another on host A and all at once;
//   - the same for a bridge task with a published port (nftables reloaded each time);
//   - peer convergence: from host B's prepare() returning to host A's FDB holding the new MAC;
//   - the baseline: NetnsNetworkAttacher (a namespace with loopback only), the floor any driver pays.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Benchmark } from './main.js';
import { DriverNetworkAttacher } from '../agent/network/attacher.js';
import { run } from '../agent/network/host.js';
import { Names } from '../agent/network/names.js';
import { containerIdFor } from '../agent/worker/naming.js';
import { NetnsNetworkAttacher, type NetworkAttacher } from '../agent/worker/network.js';
import { localKv } from '../manager/kv/embedded.js';
import { Netlink } from '../netlink/index.js';
import type { Network, Task } from '../proto/gen/objects.js';
import { parseFlags } from '../util/flags.js';

const PREFIX = `shbn${process.pid.toString(36)}-`;

function network(id: string, driver: 'overlay' | 'bridge', subnet: string, gateway: string, vni?: number): Network {
  const options: Record<string, string> = vni === undefined ? {} : { 'com.docker.network.driver.overlay.vxlanid_list': String(vni) };
  return {
    id, meta: null,
    spec: { annotations: { name: id, labels: {} }, driverConfig: { name: driver, options: {} }, ipv6: false, internal: false, attachable: false, ingress: false, ipam: null, scope: '' },
    driverState: { name: driver, options },
    ipam: { driver: null, configs: [{ subnet, gateway, range: '' }] },
  };
}

function task(id: string, net: Network | undefined, address: string, port?: number): Task {
  return {
    id, meta: null, spec: null, specVersion: 1, serviceId: 'svc', slot: 1, nodeId: '', annotations: null, serviceName: 'bench', status: null,
    desiredState: 'RUNNING', jobIteration: 0, assignedGenericResources: [],
    networks: net ? [{ networkId: net.id, addresses: [address], aliases: [], mac: '', network: net }] : [],
    endpoint: port === undefined ? null : { spec: null, virtualIps: [], ports: [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: port, publishMode: 'HOST' }] },
  };
}

function stats(samples: number[]): Record<string, number> {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  return { n: s.length, p50_ms: round(at(0.5)), p95_ms: round(at(0.95)), max_ms: round(s.at(-1)!), mean_ms: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, performance.now() - start];
}

async function sequential(attacher: NetworkAttacher, tasks: Task[]): Promise<{ prepare: number[]; release: number[] }> {
  const prepare: number[] = [];
  const release: number[] = [];
  for (const t of tasks) prepare.push((await timed(() => attacher.prepare(t, containerIdFor(t.id))))[1]);
  for (const t of tasks) release.push((await timed(() => attacher.release(t, containerIdFor(t.id))))[1]);
  return { prepare, release };
}

async function concurrent(attacher: NetworkAttacher, tasks: Task[]): Promise<{ prepareAll_ms: number; releaseAll_ms: number }> {
  const [, prepareAll] = await timed(() => Promise.all(tasks.map((t) => attacher.prepare(t, containerIdFor(t.id)))));
  const [, releaseAll] = await timed(() => Promise.all(tasks.map((t) => attacher.release(t, containerIdFor(t.id)))));
  return { prepareAll_ms: Math.round(prepareAll), releaseAll_ms: Math.round(releaseAll) };
}

const bench: Benchmark = {
  description: 'network drivers: overlay/bridge prepare+release latency, peer convergence over the KV, against a bare namespace',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'tasks', kind: 'int', default: 20, description: 'tasks prepared and released per measurement' },
      { name: 'peers', kind: 'int', default: 10, description: 'remote endpoints timed for peer convergence' },
    ]);
    const count = flags.tasks as number;
    const peerCount = flags.peers as number;
    const dirs: string[] = [];
    const attachers: DriverNetworkAttacher[] = [];
    const { kv } = localKv();
    try {
      const underlay = `${PREFIX}u`;
      await run('bench world', ['ip', 'netns', 'add', underlay]);
      await run('bench world', ['ip', '-n', underlay, 'link', 'add', 'ubr', 'up', 'type', 'bridge']);
      const hosts: Array<{ name: string; ip: string }> = [];
      for (const [i, letter] of ['a', 'b'].entries()) {
        const name = `${PREFIX}${letter}`;
        await run('bench world', ['ip', 'netns', 'add', name]);
        await run('bench world', ['ip', '-n', underlay, 'link', 'add', `u${i}`, 'master', 'ubr', 'up', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
        await run('bench world', ['ip', '-n', name, 'addr', 'add', `198.18.0.${i + 1}/24`, 'dev', 'eth0']);
        await run('bench world', ['ip', '-n', name, 'link', 'set', 'eth0', 'up']);
        hosts.push({ name, ip: `198.18.0.${i + 1}` });
      }
      const attacher = async (host: { name: string; ip: string }, nodeId: string) => {
        const dir = await mkdtemp(join(tmpdir(), 'shoal-netbench-'));
        dirs.push(dir);
        const a = new DriverNetworkAttacher({ kv, nodeId, vtep: host.ip, stateDir: dir, hostNetns: `/run/netns/${host.name}`, netnsPrefix: PREFIX });
        attachers.push(a);
        await a.start();
        return a;
      };
      const a = await attacher(hosts[0]!, 'node-a');
      const b = await attacher(hosts[1]!, 'node-b');

      const bare = new NetnsNetworkAttacher({ prefix: PREFIX });
      const bareTasks = Array.from({ length: count }, (_, i) => task(`bare${i}`, undefined, ''));
      const baseline = await sequential(bare, bareTasks);
      emit({ case: 'baseline: bare namespace (NetnsNetworkAttacher)', prepare: stats(baseline.prepare), release: stats(baseline.release) });

      const overlay = network('benchoverlay00000000000001', 'overlay', '10.90.0.0/16', '10.90.0.1', 7001);
      const keepAlive = task('keep', overlay, '10.90.255.1/16'); // the sandbox stays: per-task cost only
      await a.prepare(keepAlive, containerIdFor(keepAlive.id));
      const overlayTasks = Array.from({ length: count }, (_, i) => task(`ov${i}`, overlay, `10.90.1.${i + 2}/16`));
      const ov = await sequential(a, overlayTasks);
      emit({ case: 'overlay task, one at a time', prepare: stats(ov.prepare), release: stats(ov.release) });
      const ovAll = await concurrent(a, overlayTasks);
      emit({ case: `overlay tasks, ${count} at once`, ...ovAll });

      const bridgeNet = network('benchbridge000000000000001', 'bridge', '10.91.0.0/16', '10.91.0.1');
      const bridgeTasks = Array.from({ length: count }, (_, i) => task(`br${i}`, bridgeNet, `10.91.1.${i + 2}/16`, 20000 + i));
      const br = await sequential(a, bridgeTasks);
      emit({ case: 'bridge task with a published port, one at a time', prepare: stats(br.prepare), release: stats(br.release) });

      // Peer convergence: B's endpoint until A's sandbox FDB has its MAC.
      const sandbox = new Names(PREFIX, 'node-a').sandboxNetns(overlay.id);
      const sb = await Netlink.open({ netns: sandbox });
      const converge: number[] = [];
      try {
        for (let i = 0; i < peerCount; i++) {
          const t = task(`peer${i}`, overlay, `10.90.2.${i + 2}/16`);
          const mac = `02:42:0a:5a:02:${(i + 2).toString(16).padStart(2, '0')}`;
          await b.prepare(t, containerIdFor(t.id));
          const start = performance.now();
          for (;;) {
            if ((await sb.listFdb()).some((e) => e.mac === mac)) break;
            if (performance.now() - start > 10_000) throw new Error(`peer ${mac} never reached host A's FDB`);
            await new Promise((r) => setTimeout(r, 1));
          }
          converge.push(performance.now() - start);
        }
      } finally {
        sb.close();
      }
      emit({ case: 'peer convergence: B prepared → in A’s FDB', converge: stats(converge) });
      emit({
        summary: true, tasks: count,
        overlay_prepare_p50_ms: stats(ov.prepare).p50_ms, bridge_prepare_p50_ms: stats(br.prepare).p50_ms,
        baseline_prepare_p50_ms: stats(baseline.prepare).p50_ms, peer_convergence_p50_ms: stats(converge).p50_ms,
      });
    } finally {
      for (const a of attachers) {
        await a.releaseAll().catch(() => undefined);
        await a.close().catch(() => undefined);
      }
      await kv.close();
      for (const name of (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(PREFIX))) {
        await run('bench cleanup', ['ip', 'netns', 'del', name]).catch(() => undefined);
      }
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    }
  },
};

export default bench;
