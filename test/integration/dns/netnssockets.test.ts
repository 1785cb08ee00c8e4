// Sockets bound inside another namespace by the short-lived helper and handed to this process
// (the embedded resolver of macvlan-only tasks): they live in that namespace, answer there, and a
// failed bind names the address and the namespace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindInNetns } from '../../../agent/network/dns/netnssockets.js';
import { inNetns, tempNetns } from '../netlink/netns.js';

test('UDP and TCP bound on 127.0.0.11:53 inside a namespace, served from here', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const path = `/run/netns/${ns}`;
  assert.equal((await inNetns(ns, 'ip', 'link', 'set', 'lo', 'up')).code, 0);
  const sockets = await bindInNetns(path, '127.0.0.11', 53);
  t.after(() => {
    sockets.udp.close();
    sockets.tcp.close();
  });
  assert.deepEqual(sockets.udp.address(), { address: '127.0.0.11', family: 'IPv4', port: 53 });
  assert.deepEqual(sockets.tcp.address(), { address: '127.0.0.11', family: 'IPv4', port: 53 });

  // A client inside the namespace can only reach a socket of that namespace: the one we hold.
  sockets.tcp.on('connection', (c) => c.end('hello from outside\n'));
  const r = await inNetns(ns, 'busybox', 'nc', '-w', '2', '127.0.0.11', '53');
  assert.equal(r.output.trim(), 'hello from outside');

  await assert.rejects(bindInNetns(path, '127.0.0.11', 53), /dns sockets on 127\.0\.0\.11:53 in \/run\/netns\/.*: bind 127\.0\.0\.11:53: .*EADDRINUSE/);
  await assert.rejects(bindInNetns('/run/netns/shoal-no-such-namespace', '127.0.0.11', 53), /dns sockets on 127\.0\.0\.11:53 in \/run\/netns\/shoal-no-such-namespace: .*(No such file|cannot open)/);
});
