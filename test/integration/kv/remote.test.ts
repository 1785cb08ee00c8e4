// The KV specification against RemoteKv: agents' clients with worker certificates, over mutual
// TLS, to a real in-process manager whose embedded KV rides its Raft log. Every case gets a new
// cluster (an empty KV); every client of a case talks to the same manager.
import { test } from 'node:test';
import { RemoteKv } from '../../../kv/remote.js';
import type { Kv } from '../../../kv/kv.js';
import { kvSuite } from './suite.js';
import { TestCluster } from './cluster.js';

test('RemoteKv against a manager', async (t) => {
  await kvSuite(t, async (t) => {
    const cluster = await TestCluster.start(t);
    const node = await cluster.worker();
    const clients: Kv[] = [];
    t.after(() => Promise.all(clients.map((kv) => kv.close())));
    return {
      // Each renewal is a Raft round trip with an fsync, in a process shared with the manager.
      sessionTtlMs: 1500,
      open: () => {
        const kv = new RemoteKv({ managers: cluster.addrs(), credentials: node.credentials, channelOptions: node.channelOptions });
        clients.push(kv);
        return Promise.resolve(kv);
      },
    };
  });
});
