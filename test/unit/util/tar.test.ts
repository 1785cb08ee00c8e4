// util/tar: what the writer packs, the reader gives back, field for field; the reader also reads
// archives GNU tar wrote (GNU long names, PAX), streamed in tiny chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, linkSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { packTar, unpackTar, readTar, readBody, TarFormatError, type TarWriteEntry } from '../../../util/tar.js';

const long = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(70); // ustar prefix split
const veryLong = 'x'.repeat(120) + '/' + 'y'.repeat(130); // needs PAX path
const entries: TarWriteEntry[] = [
  { name: 'bin', type: 'dir', mode: 0o755 },
  { name: 'bin/busybox', type: 'file', mode: 0o4755, data: Buffer.from('#!binary\n'), uid: 0, gid: 0 },
  { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mode: 0o777 },
  { name: 'bin/ash', type: 'hardlink', linkname: 'bin/busybox' },
  { name: 'tmp', type: 'dir', mode: 0o1777 },
  { name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
  { name: 'dev/loop0', type: 'block', mode: 0o660, devmajor: 7, devminor: 0 },
  { name: 'run/fifo', type: 'fifo', mode: 0o600 },
  { name: long, type: 'file', data: Buffer.alloc(1000, 7), uid: 1000, gid: 1000, mtime: 1_700_000_000 },
  { name: veryLong, type: 'file', data: Buffer.from('deep') },
  { name: 'links/far', type: 'symlink', linkname: 'z'.repeat(150) },
  { name: 'unicodé/файл', type: 'file', data: Buffer.from('utf8 names go through PAX') },
  { name: 'big-ids', type: 'file', uid: 3_000_000, gid: 3_000_000_000, data: Buffer.alloc(0) },
  { name: 'xattr', type: 'file', data: Buffer.from('x'), pax: { 'SCHILY.xattr.user.k': 'v' } },
];

test('pack then unpack gives back every field of every entry', async () => {
  const got = await unpackTar(packTar(entries));
  assert.equal(got.length, entries.length);
  for (const want of entries) {
    const e = got.find((g) => g.name === want.name);
    assert.ok(e, `entry ${want.name} missing`);
    assert.equal(e.type, want.type, want.name);
    assert.equal(e.mode, want.mode ?? (want.type === 'dir' ? 0o755 : 0o644), want.name);
    assert.equal(e.uid, want.uid ?? 0, want.name);
    assert.equal(e.gid, want.gid ?? 0, want.name);
    assert.equal(e.mtime, want.mtime ?? 0, want.name);
    assert.equal(e.linkname, want.linkname ?? '', want.name);
    assert.equal(e.devmajor, want.devmajor ?? 0, want.name);
    assert.equal(e.devminor, want.devminor ?? 0, want.name);
    assert.deepEqual(e.data, want.type === 'file' ? (want.data ?? Buffer.alloc(0)) : Buffer.alloc(0), want.name);
    assert.equal(e.size, e.data.length, want.name);
  }
  assert.deepEqual(got.find((g) => g.name === 'xattr')?.pax, { 'SCHILY.xattr.user.k': 'v' });
});

test('the writer is deterministic: input order does not change the bytes, entries come out sorted', async () => {
  const a = packTar(entries);
  const b = packTar([...entries].reverse());
  assert.deepEqual(a, b);
  const names = (await unpackTar(a)).map((e) => e.name);
  // Sorted by path, except that the hard link bin/ash waits for its target bin/busybox.
  const sorted = names.filter((n) => n !== 'bin/ash').sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  sorted.splice(sorted.indexOf('bin/busybox') + 1, 0, 'bin/ash');
  assert.deepEqual(names, sorted);
  assert.equal(a.length % 512, 0);
});

test('GNU tar reads what the writer packs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-tar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a.tar');
  writeFileSync(file, packTar(entries.filter((e) => e.type !== 'char' && e.type !== 'block')));
  const listed = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.ok(listed.includes(veryLong), 'PAX long path listed');
  assert.ok(listed.includes(long), 'ustar prefix path listed');
  assert.ok(listed.includes('unicodé/файл'));
  const out = join(dir, 'x');
  mkdirSync(out);
  execFileSync('tar', ['-xf', file, '-C', out]);
  assert.equal(readFileSync(join(out, veryLong), 'utf8'), 'deep');
  assert.equal(readFileSync(join(out, 'bin/ash'), 'utf8'), '#!binary\n');
});

for (const format of ['gnu', 'pax', 'ustar'] as const) {
  test(`reads archives GNU tar writes in ${format} format, fed 7 bytes at a time`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-tar-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const src = join(dir, 'src');
    const name = format === 'ustar' ? long : veryLong;
    mkdirSync(join(src, name, '..'), { recursive: true });
    writeFileSync(join(src, name), 'hello');
    symlinkSync(format === 'ustar' ? 'short-target' : 'q'.repeat(140), join(src, 'sym'));
    // ustar cannot hold a hard link to a 190-byte name: link a short one there.
    writeFileSync(join(src, 'short'), 'hello');
    linkSync(join(src, format === 'ustar' ? 'short' : name), join(src, 'hard'));
    const file = join(dir, 'a.tar');
    execFileSync('tar', [`--format=${format}`, '--sort=name', '-cf', file, '-C', src, '.']);
    const bytes = readFileSync(file);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
    const seen = new Map<string, { type: string; linkname: string; data: string }>();
    for await (const e of readTar(Readable.from(chunks))) {
      seen.set(e.header.name, { type: e.header.type, linkname: e.header.linkname, data: (await readBody(e.body)).toString() });
    }
    const target = format === 'ustar' ? 'short' : name;
    assert.ok([seen.get(name), seen.get('short')].every((e) => e?.data === 'hello' || e?.type === 'hardlink'));
    assert.equal(seen.get('sym')?.type, 'symlink');
    assert.equal(seen.get('sym')?.linkname, format === 'ustar' ? 'short-target' : 'q'.repeat(140));
    // GNU tar archives the first name it meets as the file, the other as a link to that name.
    const pair = [
      ['hard', target],
      [target, 'hard'],
    ].find(([l]) => seen.get(l as string)?.type === 'hardlink');
    assert.ok(pair, 'one of the two names is a hard link');
    assert.equal(seen.get(pair[0] as string)?.linkname, pair[1]);
    assert.deepEqual(seen.get(pair[1] as string), { type: 'file', linkname: '', data: 'hello' });
  });
}

test('a body left unread, or read half, is skipped correctly before the next entry', async () => {
  const archive = packTar(
    [
      { name: 'a', type: 'file', data: Buffer.alloc(5000, 1) },
      { name: 'b', type: 'file', data: Buffer.alloc(700, 2) },
      { name: 'c', type: 'file', data: Buffer.from('last') },
    ],
    { keepOrder: true },
  );
  const chunks: Buffer[] = [];
  for (let i = 0; i < archive.length; i += 300) chunks.push(archive.subarray(i, i + 300));
  const names: string[] = [];
  let last = '';
  for await (const e of readTar(Readable.from(chunks))) {
    names.push(e.header.name);
    if (e.header.name === 'b') {
      for await (const _ of e.body) break; // stop after the first chunk
    }
    if (e.header.name === 'c') last = (await readBody(e.body)).toString();
  }
  assert.deepEqual(names, ['a', 'b', 'c']);
  assert.equal(last, 'last');
});

test('a corrupt header is an error that says so', async () => {
  const archive = packTar([{ name: 'a', type: 'file', data: Buffer.from('x') }]);
  archive[10] = archive[10] === 0 ? 1 : 0;
  await assert.rejects(unpackTar(archive), (err: unknown) => err instanceof TarFormatError && /checksum/.test(err.message));
});
