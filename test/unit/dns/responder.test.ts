// Query in, response out, per client: scoping to the client's networks, rcodes, search domains,
// shuffled dnsrr answers (seeded), PTR and forwarding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DnsResponder, shuffled } from '../../../agent/network/dns/responder.js';
import { NetworkRecords } from '../../../agent/network/dns/records.js';
import { TYPE_A, TYPE_AAAA, TYPE_PTR, decodeResponse, encodeQuery } from '../../../agent/network/dns/packet.js';
import { mulberry32 } from '../../support/prng.js';
import { peerEntry } from './peers.js';

const front = NetworkRecords.fromEntries('front', [
  peerEntry('front', { ip: '10.1.0.11', serviceName: 'web', task: 'w1', vip: '10.1.0.2' }),
  peerEntry('front', { ip: '10.1.0.12', serviceName: 'web', slot: 2, task: 'w2', vip: '10.1.0.2' }),
  ...Array.from({ length: 8 }, (_, i) => peerEntry('front', { ip: `10.1.0.${30 + i}`, serviceName: 'cache', slot: i + 1, task: `c${i}`, endpointMode: 'dnsrr' })),
]);
const back = NetworkRecords.fromEntries('back', [
  peerEntry('back', { ip: '10.2.0.11', serviceName: 'db', task: 'd1', endpointMode: 'dnsrr' }),
  // The same service name on a second network: the client's first network answers.
  peerEntry('back', { ip: '10.2.0.50', serviceName: 'web', task: 'w9', vip: '10.2.0.2' }),
]);

function responder(opts: { forward?: (p: Uint8Array) => Promise<Uint8Array | undefined> } = {}): DnsResponder {
  const clients: Record<string, NetworkRecords[]> = { '172.18.0.5': [front], '172.18.0.6': [back, front] };
  return new DnsResponder({ networksOf: (ip) => clients[ip], searchDomains: ['corp.example.'], random: mulberry32(42), ...opts });
}

async function ask(r: DnsResponder, client: string, name: string, type = TYPE_A) {
  const packet = await r.respond(encodeQuery(0x1234, name, type), client, 'udp');
  assert.ok(packet, 'an answer');
  return decodeResponse(packet);
}

test('a client sees only the names of its own networks', async () => {
  const r = responder();
  assert.deepEqual((await ask(r, '172.18.0.5', 'web')).answers.map((a) => a.data), ['10.1.0.2']);
  const hidden = await ask(r, '172.18.0.5', 'db');
  assert.equal(hidden.rcode, 3, 'db lives on a network this client is not on: NXDOMAIN');
  assert.deepEqual((await ask(r, '172.18.0.6', 'db')).answers.map((a) => a.data), ['10.2.0.11']);
  assert.deepEqual((await ask(r, '172.18.0.6', 'web')).answers.map((a) => a.data), ['10.2.0.2'], 'the first attached network that knows the name answers');
});

test('a stranger is refused; a response packet is ignored; garbage gets FORMERR', async () => {
  const r = responder();
  assert.equal((await ask(r, '172.18.0.99', 'web')).rcode, 5);
  const response = encodeQuery(1, 'web', TYPE_A);
  response[2] |= 0x80;
  assert.equal(await r.respond(response, '172.18.0.5', 'udp'), undefined);
  const garbage = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x05, 0x61]);
  const formerr = await r.respond(garbage, '172.18.0.5', 'udp');
  assert.ok(formerr);
  assert.equal(formerr[3] & 0xf, 1, 'FORMERR');
  assert.equal(Buffer.from(formerr).readUInt16BE(0), 0xabcd, 'the id of the query');
  assert.equal(await r.respond(Buffer.from([1, 2, 3]), '172.18.0.5', 'udp'), undefined, 'no header, no answer');
});

test('other opcodes get NOTIMP', async () => {
  const r = responder();
  const notify = encodeQuery(5, 'web', TYPE_A);
  notify[2] |= 4 << 3;
  const out = decodeResponse((await r.respond(notify, '172.18.0.5', 'udp'))!);
  assert.equal(out.rcode, 4);
});

test('names are case-insensitive, and a trailing search domain is tolerated', async () => {
  const r = responder();
  for (const name of ['WEB', 'web.corp.example', 'Web.Corp.Example', 'tasks.web.corp.example']) {
    const out = await ask(r, '172.18.0.5', name);
    assert.equal(out.rcode, 0, name);
    assert.ok(out.answers.length > 0, name);
  }
  assert.equal((await ask(r, '172.18.0.5', 'web.other.example')).rcode, 3);
});

test('AAAA for a known name is an empty NOERROR, for an unknown one NXDOMAIN; TTL is 0', async () => {
  const r = responder();
  const aaaa = await ask(r, '172.18.0.5', 'web', TYPE_AAAA);
  assert.equal(aaaa.rcode, 0);
  assert.deepEqual(aaaa.answers, []);
  assert.equal((await ask(r, '172.18.0.5', 'nothing', TYPE_AAAA)).rcode, 3);
  assert.deepEqual(
    (await ask(r, '172.18.0.5', 'web.1.w1')).answers.map((a) => [a.data, a.ttl]),
    [['10.1.0.11', 0]],
  );
});

test('dnsrr answers come in a varying order; tasks.* too; the set never changes', async () => {
  const r = responder();
  const orders = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const ips = (await ask(r, '172.18.0.5', 'cache')).answers.map((a) => a.data);
    assert.deepEqual([...ips].sort(), Array.from({ length: 8 }, (_, i) => `10.1.0.${30 + i}`));
    orders.add(ips.join(','));
  }
  assert.ok(orders.size > 10, `only ${orders.size} orders in 20 answers`);
  const first = new Set<string>();
  for (let i = 0; i < 20; i++) first.add((await ask(r, '172.18.0.5', 'tasks.cache')).answers[0].data);
  assert.ok(first.size > 1);
  assert.deepEqual(shuffled([1, 2, 3], () => 0.999), [1, 2, 3]);
});

test('PTR of a task IP on the client’s networks names the task', async () => {
  const r = responder();
  const ptr = await ask(r, '172.18.0.5', '12.0.1.10.in-addr.arpa', TYPE_PTR);
  assert.deepEqual(ptr.answers.map((a) => a.data), ['web.2.w2']);
  assert.equal((await ask(r, '172.18.0.5', '11.0.2.10.in-addr.arpa', TYPE_PTR)).rcode, 3, 'not on this client’s networks');
});

test('with forwarding, unknown names go upstream; known ones never do', async () => {
  const asked: string[] = [];
  const upstreamAnswer = Buffer.from('upstream');
  const r = responder({
    forward: (p) => {
      asked.push(decodeResponse(p).id.toString(16));
      return Promise.resolve(upstreamAnswer);
    },
  });
  assert.equal(await r.respond(encodeQuery(0x77, 'example.org', TYPE_A), '172.18.0.5', 'udp'), upstreamAnswer);
  assert.equal((await ask(r, '172.18.0.5', 'web')).answers.length, 1);
  assert.deepEqual(asked, ['77']);
  const failing = responder({ forward: () => Promise.resolve(undefined) });
  const out = await ask(failing, '172.18.0.5', 'example.org');
  assert.equal(out.rcode, 3, 'no upstream answer: NXDOMAIN');
});
