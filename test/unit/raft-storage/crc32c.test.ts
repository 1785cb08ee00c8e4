import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../../manager/raft/storage/crc32c.js';
import { seededBytes } from './helpers.js';

test('CRC-32C matches the standard check value and RFC 3720 vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // 32 zero bytes
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('CRC-32C continues across buffers and over sub-ranges', () => {
  const data = seededBytes(7, 1000);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32c(data, cut, data.length, crc32c(data, 0, cut)), whole, `cut at ${cut}`);
  }
  assert.equal(crc32c(data, 3, 11), crc32c(data.slice(3, 11)));
});
