// The KV specification against the embedded backend: a state machine applied through a
// LocalProposer, every client an EmbeddedKv on that one replica (as agents share a manager).
import { test } from 'node:test';
import { EmbeddedKv, LocalProposer } from '../../../manager/kv/embedded.js';
import { KvStateMachine } from '../../../manager/kv/statemachine.js';
import type { Kv } from '../../../kv/kv.js';
import { kvSuite } from './suite.js';

test('EmbeddedKv', async (t) => {
  await kvSuite(t, (t) => {
    const sm = new KvStateMachine();
    const proposer = new LocalProposer(sm);
    const clients: Kv[] = [];
    t.after(() => Promise.all(clients.map((kv) => kv.close())));
    return Promise.resolve({
      open: () => {
        const kv = new EmbeddedKv(sm, proposer, { expiryIntervalMs: 25 });
        clients.push(kv);
        return Promise.resolve(kv);
      },
    });
  });
});
