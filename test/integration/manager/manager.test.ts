// Managers for real, in one process: the founder creates the cluster; a worker and a second
// manager join over mutual TLS with join tokens; the second manager becomes a Raft member and its
// store replicates the cluster's objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Manager, newRaftId } from '../../../manager/manager.js';
import { RootCA, newNodeKeyAndCsr, newId } from '../../../manager/ca/ca.js';
import { formatJoinToken } from '../../../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { MembershipClient, type JoinRaftResponse } from '../../../proto/gen/membership.js';
import { requestNodeCertificate } from '../../../daemon/join.js';
import { waitFor } from '../../support/wait.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

test('a founder, a joining worker and a joining manager form one replicated cluster', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mgr-'));
  const managers: Manager[] = [];
  t.after(async () => {
    for (const m of managers) await m.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  const ca = RootCA.create();
  const founderId = newId();
  const { keyPem, csrPem } = newNodeKeyAndCsr(founderId);
  const p1 = await freePort();
  const m1 = await Manager.start({
    nodeId: founderId,
    raftId: newRaftId(),
    dataDir: join(root, 'm1'),
    listenAddr: `127.0.0.1:${p1}`,
    advertiseAddr: `127.0.0.1:${p1}`,
    hostname: 'h1',
    certs: { ca: ca.certPem, cert: ca.issue(csrPem, { nodeId: founderId, role: 'manager' }), key: keyPem },
    bootstrap: { rootCA: ca },
    tickMs: 20,
  });
  managers.push(m1);
  const cluster = await waitFor('the cluster object', () => m1.store.all('clusters')[0]);
  assert.equal(m1.isLeader, true);
  assert.equal(m1.store.get('nodes', founderId)?.managerStatus?.leader, true);
  assert.equal(m1.store.all('networks').length, 1, 'the ingress network exists');
  const token = (role: 'worker' | 'manager') => formatJoinToken(ca.digest(), cluster.joinTokens![role]);

  const w = await requestNodeCertificate(m1.addrForTests(), token('worker'), { hostname: 'h2', advertiseAddr: '' });
  assert.equal(w.role, 'WORKER');

  const p2 = await freePort();
  const j = await requestNodeCertificate(m1.addrForTests(), token('manager'), { hostname: 'h3', advertiseAddr: `127.0.0.1:${p2}` });
  assert.equal(j.role, 'MANAGER');
  const creds = clusterChannelCredentials(j.caCertPem, j.certificatePem, j.keyPem);
  const client = new MembershipClient(m1.addrForTests(), creds, MANAGER_CHANNEL_OPTIONS);
  const joined = await new Promise<JoinRaftResponse>((resolve, reject) =>
    client.joinRaft({ addr: `127.0.0.1:${p2}` }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
  );
  client.close();
  const m2 = await Manager.start({
    nodeId: j.nodeId,
    raftId: joined.raftId,
    dataDir: join(root, 'm2'),
    listenAddr: `127.0.0.1:${p2}`,
    advertiseAddr: `127.0.0.1:${p2}`,
    hostname: 'h3',
    certs: { ca: j.caCertPem, cert: j.certificatePem, key: j.keyPem },
    join: joined.members.map((m) => ({ id: m.raftId, addr: m.addr })),
    tickMs: 20,
  });
  managers.push(m2);
  await waitFor('the worker to replicate to the second manager', () => m2.store.get('nodes', w.nodeId));
  assert.equal(m2.isLeader, false);
  assert.equal(m1.raft.voters().length, 2);
  assert.equal(m2.store.get('nodes', j.nodeId)?.managerStatus?.raftId, joined.raftId);
  // The second manager's copy of the CA comes from the store, and matches.
  assert.equal(m2.rootCA().certPem, ca.certPem);
});
