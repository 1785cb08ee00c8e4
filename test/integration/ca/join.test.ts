// Joining for real: a manager's cluster port (TLS that asks for but does not require a client
// certificate, the authz interceptor, the CA service over a store) and the joining node's client,
// which trusts the manager only after checking the CA digest in its token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { RootCA, newNodeKeyAndCsr, identityOf } from '../../../manager/ca/ca.js';
import { authzInterceptor } from '../../../manager/ca/authz.js';
import { registerCAService } from '../../../manager/ca/service.js';
import { MutableCertificates, clusterServerCredentials, clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { formatJoinToken, newSecret } from '../../../manager/ca/token.js';
import { MemoryStore, LocalProposer } from '../../../manager/store/memory.js';
import { blank, copy } from '../../../manager/store/blank.js';
import { Cluster, JoinTokens } from '../../../proto/gen/objects.js';
import { CAClient, type IssueNodeCertificateResponse } from '../../../proto/gen/ca.js';
import { requestNodeCertificate, fetchTrustedRootCA, JoinError } from '../../../daemon/join.js';

async function startManager() {
  const ca = RootCA.create('cluster1');
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  const tokens = { worker: newSecret(), manager: newSecret() };
  await store.update((tx) => tx.create('clusters', blank(Cluster, { id: 'cluster1', joinTokens: blank(JoinTokens, tokens) })));
  const { keyPem, csrPem } = newNodeKeyAndCsr('m1');
  const certs = new MutableCertificates(ca.certPem, ca.issue(csrPem, { nodeId: 'm1', role: 'manager' }), keyPem);
  const server = new grpc.Server({ interceptors: [authzInterceptor({ caCertPem: () => ca.certPem, nodeAllowed: (id) => store.get('nodes', id.nodeId) !== undefined })] });
  registerCAService(server, { store, rootCA: () => ca, managerAddrs: () => ['m1:2377'], canWrite: () => true });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', clusterServerCredentials(certs), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const token = (role: 'worker' | 'manager') => formatJoinToken(ca.digest(), tokens[role]);
  return { ca, store, server, addr: `127.0.0.1:${port}`, token, tokens };
}

test('joining with a token: the role comes from the token, the node is recorded, the certificate chains to the CA', async (t) => {
  const m = await startManager();
  t.after(() => m.server.forceShutdown());
  const w = await requestNodeCertificate(m.addr, m.token('worker'), { hostname: 'h2', advertiseAddr: '198.18.0.2:2377' });
  assert.equal(w.role, 'WORKER');
  assert.equal(new X509Certificate(w.certificatePem).checkIssued(new X509Certificate(m.ca.certPem)), true);
  assert.deepEqual(identityOf(w.certificatePem).role, 'worker');
  const node = m.store.get('nodes', w.nodeId)!;
  assert.equal(node.description?.hostname, 'h2');
  assert.equal(node.certificateFingerprint, new X509Certificate(w.certificatePem).fingerprint256);
  assert.deepEqual(w.managerAddrs, ['m1:2377']);

  const mgr = await requestNodeCertificate(m.addr, m.token('manager'), { hostname: 'h3', advertiseAddr: '' });
  assert.equal(mgr.role, 'MANAGER');
  assert.equal(identityOf(mgr.certificatePem).role, 'manager');
});

test('a node renews with its certificate, keeping its identity', async (t) => {
  const m = await startManager();
  t.after(() => m.server.forceShutdown());
  const w = await requestNodeCertificate(m.addr, m.token('worker'), { hostname: 'h2', advertiseAddr: '' });
  const { keyPem, csrPem } = newNodeKeyAndCsr(w.nodeId);
  const client = new CAClient(m.addr, clusterChannelCredentials(m.ca.certPem, w.certificatePem, w.keyPem), MANAGER_CHANNEL_OPTIONS);
  t.after(() => client.close());
  const renewed = await new Promise<IssueNodeCertificateResponse>((resolve, reject) =>
    client.issueNodeCertificate({ csrPem, token: '', advertiseAddr: '', hostname: '' }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
  );
  assert.equal(renewed.nodeId, w.nodeId);
  assert.equal(identityOf(renewed.certificatePem).nodeId, w.nodeId);
  assert.ok(keyPem.length > 0);
  assert.equal(m.store.all('nodes').length, 1, 'renewal creates no second node');
});

test('wrong, rotated and foreign tokens are refused with a clear reason', async (t) => {
  const m = await startManager();
  t.after(() => m.server.forceShutdown());
  const wrong = formatJoinToken(m.ca.digest(), newSecret());
  await assert.rejects(requestNodeCertificate(m.addr, wrong, { hostname: 'x', advertiseAddr: '' }), (e: unknown) => e instanceof JoinError && /invalid join token: it was rotated/.test(e.message));

  const old = m.token('worker');
  const cluster = copy(Cluster, m.store.all('clusters')[0]!);
  cluster.joinTokens!.worker = newSecret();
  await m.store.update((tx) => tx.update('clusters', cluster));
  await assert.rejects(requestNodeCertificate(m.addr, old, { hostname: 'x', advertiseAddr: '' }), /invalid join token/);

  const foreign = formatJoinToken(RootCA.create().digest(), m.tokens.worker);
  await assert.rejects(fetchTrustedRootCA(m.addr, foreign), (e: unknown) => e instanceof JoinError && /does not belong to the cluster of this join token/.test(e.message));
  assert.equal(m.store.all('nodes').length, 0, 'no refused join leaves a node behind');
});
