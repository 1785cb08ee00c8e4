// Certificates from manager/ca carry real mutual TLS through @grpc/grpc-js: the server requires a
// client certificate from its own CA and refuses one from another CA, or none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { TLSSocket } from 'node:tls';
import { RootCA, identityOf } from '../../../manager/ca/ca.js';
import { HealthService, HealthClient, type HealthHandlers, type HealthCheckResponse } from '../../../proto/gen/health.js';
import { DispatcherClient, DispatcherService, type DispatcherHandlers, type HeartbeatResponse } from '../../../proto/gen/dispatcher.js';
import { authzInterceptor, callerIdentity } from '../../../manager/ca/authz.js';
import { bindMutualTls, nodeCreds } from '../../support/tls.js';


test('mutual TLS: own CA accepted, foreign CA and no certificate refused', async (t) => {
  const ca = RootCA.create();
  const server = new grpc.Server();
  const peers: string[] = [];
  const handlers: HealthHandlers = {
    check: (call, cb) => {
      const cert = call.getAuthContext()?.sslPeerCertificate;
      if (cert) peers.push(identityOf(`-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64')}\n-----END CERTIFICATE-----\n`).nodeId);
      cb(null, { status: 'SERVING', version: '', uptimeMs: 0 });
    },
    watch: (call) => call.end(),
  };
  server.addService(HealthService, handlers);
  const port = await bindMutualTls(server, ca);
  t.after(() => server.forceShutdown());

  const call = (creds: grpc.ChannelCredentials) =>
    new Promise<HealthCheckResponse>((resolve, reject) => {
      const client = new HealthClient(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'shoal-manager' });
      client.check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, r) => {
        client.close();
        if (err || !r) reject(err ?? new Error('no response'));
        else resolve(r);
      });
    });

  const w = nodeCreds(ca, 'worker1', 'worker');
  const ok = await call(grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(w.keyPem), Buffer.from(w.certPem)));
  assert.equal(ok.status, 'SERVING');
  assert.deepEqual(peers, ['worker1']);

  const other = RootCA.create();
  const f = nodeCreds(other, 'intruder', 'manager');
  await assert.rejects(call(grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(f.keyPem), Buffer.from(f.certPem))));
  await assert.rejects(call(grpc.credentials.createSsl(Buffer.from(ca.certPem))));
  assert.deepEqual(peers, ['worker1']);
});

test('a handler behind the authz interceptor learns its caller from the interceptor, without reading the certificate again', async (t) => {
  const ca = RootCA.create();
  const seen: Array<string | null> = [];
  const server = new grpc.Server({ interceptors: [authzInterceptor({ caCertPem: () => ca.certPem, nodeAllowed: () => true })] });
  const handlers = {
    heartbeat: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<HeartbeatResponse>) => {
      // Reading the certificate here would throw: the identity must come from the interceptor.
      const unread = Object.assign(Object.create(call) as typeof call, {
        getAuthContext: () => {
          throw new Error('the handler read the peer certificate again');
        },
      });
      seen.push(callerIdentity(unread)?.nodeId ?? null);
      cb(null, { periodMs: 1000 });
    },
  } as unknown as DispatcherHandlers;
  server.addService(DispatcherService, handlers);
  const port = await bindMutualTls(server, ca);
  t.after(() => server.forceShutdown());
  const w = nodeCreds(ca, 'worker7', 'worker');
  const client = new DispatcherClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(w.keyPem), Buffer.from(w.certPem)), {
    'grpc.ssl_target_name_override': 'shoal-manager',
  });
  t.after(() => client.close());
  // Count how often the server asks TLS for the peer certificate (costly: built afresh each time).
  const original = TLSSocket.prototype.getPeerCertificate;
  let asked = 0;
  TLSSocket.prototype.getPeerCertificate = function (this: TLSSocket, ...args: Parameters<typeof original>) {
    asked++;
    return original.apply(this, args);
  } as typeof original;
  t.after(() => (TLSSocket.prototype.getPeerCertificate = original));
  const beat = (md: grpc.Metadata) =>
    new Promise<void>((resolve, reject) => client.heartbeat({ sessionId: 's' }, md, { deadline: Date.now() + 5000 }, (err) => (err ? reject(err) : resolve())));
  await beat(new grpc.Metadata());
  const afterFirst = asked;
  // A caller naming itself in metadata changes nothing: only the certificate counts.
  const spoof = new grpc.Metadata();
  spoof.set('node-id', 'manager1');
  for (const md of [spoof, new grpc.Metadata(), new grpc.Metadata()]) await beat(md);
  assert.deepEqual(seen, ['worker7', 'worker7', 'worker7', 'worker7']);
  assert.equal(asked, afterFirst, 'later calls on the same connection reuse what the first one learnt');
});
