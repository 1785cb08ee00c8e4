import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeError, Reader, Writer, snapshotSize } from '../../../manager/raft/storage/binary.js';
import type { Snapshot } from '../../../manager/raft/types.js';

test('snapshot metadata and numbers up to 2^53-1 round-trip through the binary codec', () => {
  const snap: Snapshot = {
    metadata: {
      index: Number.MAX_SAFE_INTEGER,
      term: 2 ** 32 + 5,
      confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [1, 2], learnersNext: [3], autoLeave: true },
    },
    data: new Uint8Array([0, 1, 2, 255]),
  };
  const w = new Writer(snapshotSize(snap));
  w.snapshot(snap);
  assert.equal(w.pos, w.buf.length);
  assert.deepEqual(new Reader(w.buf).snapshot(), snap);
});

test('decoding refuses truncated input and u64 values that would lose precision', () => {
  const w = new Writer(8);
  w.buf.writeUInt32LE(0, 0);
  w.buf.writeUInt32LE(0x20_0000, 4); // 2^53
  assert.throws(() => new Reader(w.buf).u64(), DecodeError);
  assert.throws(() => new Reader(new Uint8Array(3)).u32(), /truncated u32/);
  assert.throws(() => new Writer(8).u64(2 ** 53), /not a safe non-negative integer/);
});
