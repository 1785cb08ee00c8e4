import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { RootCA, newNodeKeyAndCsr } from '../../../manager/ca/ca.js';
import { authorize, type AuthzDeps } from '../../../manager/ca/authz.js';

const ca = RootCA.create('c1');
const removed = new Set<string>();
const deps: AuthzDeps = { caCertPem: () => ca.certPem, nodeAllowed: (id) => !removed.has(id.nodeId) };

function ctxFor(certPem: string | null): { sslPeerCertificate?: { raw: Buffer } } {
  return certPem ? { sslPeerCertificate: { raw: new X509Certificate(certPem).raw } } : {};
}
const issue = (from: RootCA, nodeId: string, role: 'manager' | 'worker') => from.issue(newNodeKeyAndCsr(nodeId).csrPem, { nodeId, role });
// The interceptor hands authorize grpc's AuthContext; these tests build the part it reads.
const check = (path: string, cert: string | null) => authorize(path, ctxFor(cert) as never, deps);

test('the CA service is open to nodes without a certificate (joining)', () => {
  assert.equal(check('/shoal.ca.CA/IssueNodeCertificate', null), null);
});

test('other services need a certificate of this cluster with the right role', () => {
  const worker = issue(ca, 'w1', 'worker');
  const manager = issue(ca, 'm1', 'manager');
  assert.equal(check('/shoal.dispatcher.Dispatcher/Heartbeat', worker), null);
  assert.equal(check('/shoal.raft.Raft/Stream', manager), null);
  assert.equal(check('/shoal.raft.Raft/Stream', worker)?.code, grpc.status.PERMISSION_DENIED);
  assert.match(check('/shoal.control.Control/ListNodes', worker)?.message ?? '', /node w1 is a worker/);
  assert.equal(check('/shoal.dispatcher.Dispatcher/Heartbeat', null)?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(check('/shoal.dispatcher.Dispatcher/Heartbeat', issue(RootCA.create('other'), 'x', 'manager'))?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(check('/shoal.nope.Nope/X', manager)?.code, grpc.status.UNIMPLEMENTED);
});

test('a removed node is refused at once', () => {
  const cert = issue(ca, 'gone', 'worker');
  assert.equal(check('/shoal.dispatcher.Dispatcher/Heartbeat', cert), null);
  removed.add('gone');
  assert.match(check('/shoal.dispatcher.Dispatcher/Heartbeat', cert)?.message ?? '', /was removed/);
});
