// A ServiceDiscovery in a process of its own, so the test can run it inside the network namespace
// that plays the host (`nsenter --net=… node fixture.js`): a socket binds in its creator's
// namespace and Node cannot switch namespaces. The peer table is an embedded KV in this process;
// the test drives everything through the IPC channel: {id, op, args} in, {id, result | error} out.
import { EmbeddedKv, LocalProposer } from '../../../manager/kv/embedded.js';
import { KvStateMachine } from '../../../manager/kv/statemachine.js';
import { ServiceDiscovery } from '../../../agent/network/dns/servicediscovery.js';
import type { DiscoveryAttachment } from '../../../agent/network/discovery.js';
import { createLogger } from '../../../util/log.js';
import { mulberry32 } from '../../support/prng.js';

export type FixtureRequest =
  | { op: 'put'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'serve'; ip: string }
  | { op: 'attach'; containerId: string; netnsPath: string; clientIp: string; attachments: DiscoveryAttachment[] }
  | { op: 'detach'; containerId: string }
  | { op: 'close' };

export type FixtureReply = { id: number; result?: unknown; error?: string };

// Only as the child of a test (with an IPC channel): a test runner that globs this file finds nothing.
if (process.send) serve();

function serve(): void {
  const sm = new KvStateMachine();
  const kv = new EmbeddedKv(sm, new LocalProposer(sm), { expiryIntervalMs: 0 });
  const sd = new ServiceDiscovery({
    kv,
    random: mulberry32(20240601),
    resolvConfPath: '/nonexistent',
    log: createLogger('dns-fixture', { level: process.env.DNS_FIXTURE_DEBUG ? 'debug' : 'warn' }),
  });

  async function handle(req: FixtureRequest): Promise<unknown> {
    switch (req.op) {
      case 'put':
        return kv.put(req.key, new TextEncoder().encode(req.value));
      case 'delete':
        return kv.delete(req.key);
      case 'serve':
        return sd.serve(req.ip);
      case 'attach':
        return sd.attach(req);
      case 'detach':
        return sd.detach(req.containerId);
      case 'close':
        await sd.close();
        await kv.close();
        return undefined;
    }
  }

  process.on('message', (msg: { id: number } & FixtureRequest) => {
    const reply = (r: Omit<FixtureReply, 'id'>) => {
      process.send?.({ id: msg.id, ...r } satisfies FixtureReply, () => {
        if (msg.op === 'close') process.disconnect();
      });
    };
    handle(msg).then(
      (result) => reply({ result: result ?? null }),
      (err: unknown) => reply({ error: (err as Error).message }),
    );
  });
}
