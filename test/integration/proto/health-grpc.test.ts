// The proto pipeline end to end: generated codecs and service definitions carry a real call over
// gRPC on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { HealthService, HealthClient, HealthCheckResponse, type HealthHandlers } from '../../../proto/gen/health.js';

test('generated codec round-trips enums and 64-bit integers', () => {
  const bytes = HealthCheckResponse.encode({ status: 'NOT_SERVING', version: '1.2.3', uptimeMs: 2 ** 40 + 7 });
  assert.deepEqual(HealthCheckResponse.decode(bytes), { status: 'NOT_SERVING', version: '1.2.3', uptimeMs: 2 ** 40 + 7 });
  assert.deepEqual(HealthCheckResponse.decode(new Uint8Array()), { status: 'UNKNOWN', version: '', uptimeMs: 0 });
});

test('unary and server-streaming calls work through the generated service', async (t) => {
  const server = new grpc.Server();
  const handlers: HealthHandlers = {
    check: (call, cb) => cb(null, { status: call.request.service === 'raft' ? 'SERVING' : 'NOT_SERVING', version: 'x', uptimeMs: 42 }),
    watch: (call) => {
      for (const status of ['UNKNOWN', 'SERVING'] as const) call.write({ status, version: 'x', uptimeMs: 1 });
      call.end();
    },
  };
  server.addService(HealthService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.after(() => {
    client.close();
    server.forceShutdown();
  });
  const res = await new Promise<HealthCheckResponse>((resolve, reject) =>
    client.check({ service: 'raft' }, (err, r) => (err || !r ? reject(err ?? new Error('no response')) : resolve(r))),
  );
  assert.equal(res.status, 'SERVING');
  assert.equal(res.uptimeMs, 42);
  const statuses: string[] = [];
  for await (const msg of client.watch({ service: '' }) as AsyncIterable<HealthCheckResponse>) statuses.push(msg.status);
  assert.deepEqual(statuses, ['UNKNOWN', 'SERVING']);
});
