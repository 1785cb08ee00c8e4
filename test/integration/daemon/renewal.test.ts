// Node certificates: a renewal gives the node a new certificate (same identity, new key), the old
// one is refused from then on, and the agent carries on with the new one. A promotion written to
// the store reaches the worker through a renewal: it joins Raft and runs a manager; a demotion
// takes it out again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Swarm } from '../../../daemon/swarm.js';
import { renewalTime, renewCertificate } from '../../../daemon/renewal.js';
import { identityOf } from '../../../manager/ca/ca.js';
import { copy } from '../../../manager/store/blank.js';
import { Node } from '../../../proto/gen/objects.js';
import { createLogger, silentLogger } from '../../../util/log.js';
import { waitFor } from '../../support/wait.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('a node renews its certificate; the old one is refused; a promotion arrives by renewal', async (t) => {
  const dirs = [mkdtempSync(join(tmpdir(), 'renew-a-')), mkdtempSync(join(tmpdir(), 'renew-b-'))];
  const swarms = dirs.map((d, i) => new Swarm(d, process.env.DEBUG_TEST ? createLogger(`swarm${i}`, { write: (l) => process.stderr.write(l) }) : silentLogger, 20));
  t.after(async () => {
    for (const s of swarms) await s.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const [a, b] = swarms as [Swarm, Swarm];
  const portA = await freePort();
  const portB = await freePort();
  const init = await a.init({ listenAddr: `127.0.0.1:${portA}`, advertiseAddr: `127.0.0.1:${portA}` });
  const certPath = join(dirs[0]!, 'swarm', 'node.pem');
  const before = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(join(dirs[0]!, 'swarm', 'node.key'), 'utf8'), ca: readFileSync(join(dirs[0]!, 'swarm', 'ca.pem'), 'utf8') };

  const at = renewalTime(before.cert, 0.5).getTime();
  const c = new X509Certificate(before.cert);
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  assert.ok(at >= from + (to - from) * 0.5 && at <= from + (to - from) * 0.8);

  await a.renewCertificate();
  const after = readFileSync(certPath, 'utf8');
  assert.notEqual(after, before.cert);
  assert.equal(identityOf(after).nodeId, init.nodeId);
  const fingerprint = new X509Certificate(after).fingerprint256;
  assert.equal(a.manager!.store.get('nodes', init.nodeId)!.certificateFingerprint, fingerprint);
  // The replaced certificate no longer gets anything from the cluster.
  await assert.rejects(renewCertificate([`127.0.0.1:${portA}`], before, `127.0.0.1:${portA}`), /was replaced by a renewal and is no longer valid/);
  // The agent reconnected with the new certificate: the node is (still) Ready.
  await waitFor('node A Ready with its new certificate', () => a.manager!.store.get('nodes', init.nodeId)?.status?.state === 'READY');

  // A worker joins, then the store says it should be a manager: it renews, joins Raft, manages.
  const tokens = init.workerToken;
  const joined = await b.join({ token: tokens, remote: `127.0.0.1:${portA}`, listenAddr: `127.0.0.1:${portB}`, advertiseAddr: `127.0.0.1:${portB}` });
  assert.equal(joined.role, 'WORKER');
  await waitFor('the worker Ready', () => a.manager!.store.get('nodes', joined.nodeId)?.status?.state === 'READY');
  await a.manager!.store.update((tx) => {
    const n = copy(Node, tx.get('nodes', joined.nodeId)!);
    n.spec!.desiredRole = 'MANAGER';
    tx.update('nodes', n);
  });
  await waitFor('the promoted node to run a manager in Raft', () => b.manager !== null && a.manager!.raft.memberList().length === 2, { timeoutMs: 30_000 });
  assert.equal(identityOf(readFileSync(join(dirs[1]!, 'swarm', 'node.pem'), 'utf8')).role, 'manager');

  // And back: a demotion leaves Raft and stops the manager; the node stays a Ready worker.
  await a.manager!.store.update((tx) => {
    const n = copy(Node, tx.get('nodes', joined.nodeId)!);
    n.spec!.desiredRole = 'WORKER';
    tx.update('nodes', n);
  });
  await waitFor('the demoted node to leave Raft and stop its manager', () => b.manager === null && a.manager!.raft.memberList().length === 1, { timeoutMs: 30_000 });
  assert.equal(identityOf(readFileSync(join(dirs[1]!, 'swarm', 'node.pem'), 'utf8')).role, 'worker');
  await waitFor('the demoted node Ready as a worker', () => {
    const n = a.manager!.store.get('nodes', joined.nodeId);
    return n?.status?.state === 'READY' && n.role === 'WORKER';
  });
});
