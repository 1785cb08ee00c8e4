// DNS wire format: queries read, responses written, and malformed packets refused without a crash.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DnsFormatError,
  RCODE_NOERROR,
  TYPE_A,
  TYPE_AAAA,
  TYPE_PTR,
  decodeResponse,
  encodeName,
  encodeQuery,
  encodeResponse,
  parseQuery,
  readName,
} from '../../../agent/network/dns/packet.js';

test('a query round-trips: id, RD, the one question lower-cased, EDNS payload', () => {
  const packet = encodeQuery(0xbeef, 'Web.Example', TYPE_AAAA, { ednsPayload: 1232 });
  const q = parseQuery(packet);
  assert.equal(q.id, 0xbeef);
  assert.equal(q.isResponse, false);
  assert.equal(q.opcode, 0);
  assert.equal(q.recursionDesired, true);
  assert.equal(q.questionCount, 1);
  assert.deepEqual(q.question, { name: 'web.example', type: TYPE_AAAA, class: 1 });
  assert.equal(q.ednsPayload, 1232);
  // The question is echoed byte for byte, case included (0x20 mixing survives).
  assert.equal(Buffer.from(q.questionBytes!).subarray(0, 13).toString('latin1'), '\x03Web\x07Example\x00');
  assert.equal(parseQuery(encodeQuery(1, 'a', TYPE_A)).ednsPayload, undefined);
});

test('a response carries A and PTR answers with the TTL, named by a pointer to the question', () => {
  const q = parseQuery(encodeQuery(7, 'web', TYPE_A));
  const packet = encodeResponse({
    id: 7,
    opcode: 0,
    rcode: RCODE_NOERROR,
    recursionDesired: true,
    recursionAvailable: false,
    authoritative: true,
    questionBytes: q.questionBytes!,
    answers: [
      { type: TYPE_A, ip: '10.0.0.5', ttl: 0 },
      { type: TYPE_PTR, target: 'web.1.abc', ttl: 3 },
    ],
    maxBytes: 512,
  });
  const r = decodeResponse(packet);
  assert.equal(r.id, 7);
  assert.equal(r.rcode, 0);
  assert.equal(r.authoritative, true);
  assert.equal(r.truncated, false);
  assert.deepEqual(r.answers, [
    { name: 'web', type: TYPE_A, ttl: 0, data: '10.0.0.5' },
    { name: 'web', type: TYPE_PTR, ttl: 3, data: 'web.1.abc' },
  ]);
  assert.equal(packet[2] & 0x80, 0x80, 'QR is set');
  assert.equal(packet[3] & 0x80, 0, 'RA is clear without forwarding');
});

test('answers that do not fit are left out and TC is set', () => {
  const q = parseQuery(encodeQuery(9, 'tasks.web', TYPE_A));
  const answers = Array.from({ length: 40 }, (_, i) => ({ type: TYPE_A, ip: `10.0.0.${i + 1}`, ttl: 0 }) as const);
  const packet = encodeResponse({ id: 9, opcode: 0, rcode: 0, recursionDesired: true, recursionAvailable: false, authoritative: true, questionBytes: q.questionBytes!, answers, maxBytes: 512 });
  assert.ok(packet.length <= 512, `${packet.length} bytes`);
  const r = decodeResponse(packet);
  assert.equal(r.truncated, true);
  assert.ok(r.answers.length > 0 && r.answers.length < 40);
  const all = decodeResponse(encodeResponse({ id: 9, opcode: 0, rcode: 0, recursionDesired: true, recursionAvailable: false, authoritative: true, questionBytes: q.questionBytes!, answers, maxBytes: 65535 }));
  assert.equal(all.truncated, false);
  assert.equal(all.answers.length, 40);
});

test('compressed names are followed; pointers that do not point backwards are refused', () => {
  // "web" at 12, then a name "tasks" + pointer to 12 at 17.
  const packet = Buffer.concat([Buffer.alloc(12), encodeName('web'), Buffer.from([5, ...Buffer.from('tasks'), 0xc0, 12])]);
  assert.deepEqual(readName(packet, 17), { name: 'tasks.web', end: 25 });
  const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
  assert.throws(() => readName(loop, 12), DnsFormatError);
  const forward = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 14, 0])]);
  assert.throws(() => readName(forward, 12), DnsFormatError);
});

test('malformed packets throw DnsFormatError, never anything else', () => {
  const good = encodeQuery(1, 'web.example', TYPE_A);
  for (let cut = 0; cut < good.length; cut++) {
    assert.throws(() => parseQuery(good.subarray(0, cut)), DnsFormatError, `cut at ${cut}`);
  }
  const badLabel = Buffer.from(good);
  badLabel[12] = 0x80; // reserved label type
  assert.throws(() => parseQuery(badLabel), DnsFormatError);
  const tooLong = Buffer.concat([good.subarray(0, 12), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]);
  assert.throws(() => parseQuery(tooLong), /longer than 255/);
  assert.throws(() => encodeName(`${'a'.repeat(64)}.b`), /1-63 bytes/);
});
