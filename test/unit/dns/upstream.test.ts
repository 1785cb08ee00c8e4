// The host's resolv.conf and forwarding to its nameservers (a fake upstream on loopback).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { parseResolvConf, udpForwarder } from '../../../agent/network/dns/upstream.js';
import { TYPE_A, encodeQuery, parseQuery } from '../../../agent/network/dns/packet.js';

test('resolv.conf: IPv4 nameservers in order, the last search or domain line, comments ignored', () => {
  const conf = parseResolvConf(['# generated', 'nameserver 10.255.255.53', 'nameserver ::1', 'domain old.example', 'search Corp.Example. lab ; trailing', 'nameserver 192.0.2.1 # second', 'options ndots:2'].join('\n'));
  assert.deepEqual(conf, { nameservers: ['10.255.255.53', '192.0.2.1'], search: ['corp.example', 'lab'] });
  assert.deepEqual(parseResolvConf(''), { nameservers: [], search: [] });
});

test('the forwarder relays the query as is and returns the answer with the same id', async (t) => {
  const upstream = createSocket('udp4');
  await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
  t.after(() => upstream.close());
  const seen: string[] = [];
  upstream.on('message', (msg, rinfo) => {
    seen.push(parseQuery(msg).question!.name);
    const reply = Buffer.from(msg);
    reply[2] |= 0x80;
    // A stray packet with another id first: it must not be taken for the answer.
    upstream.send(Buffer.from([reply[0] ^ 0xff, reply[1], reply[2]]), rinfo.port, rinfo.address);
    upstream.send(reply, rinfo.port, rinfo.address);
  });
  const forward = udpForwarder({ nameservers: ['127.0.0.1'], port: upstream.address().port, timeoutMs: 5_000 });
  const answer = await forward(encodeQuery(0x4242, 'example.org', TYPE_A));
  assert.ok(answer);
  assert.equal(parseQuery(answer).id, 0x4242);
  assert.equal(parseQuery(answer).isResponse, true);
  assert.deepEqual(seen, ['example.org']);
});

test('a silent nameserver yields undefined after the timeout', async (t) => {
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  t.after(() => silent.close());
  const forward = udpForwarder({ nameservers: ['127.0.0.1'], port: silent.address().port, timeoutMs: 50 });
  assert.equal(await forward(encodeQuery(1, 'example.org', TYPE_A)), undefined);
});
