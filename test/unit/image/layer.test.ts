// Layer unpacking: contents, metadata, links, and the entries a hostile layer uses to escape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { packTar, type TarWriteEntry } from '../../../util/tar.js';
import { applyLayer, LayerError } from '../../../agent/runtime/image/layer.js';
import { sha256 } from '../../../agent/runtime/image/oci.js';

function setup(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-layer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'out'));
  return dir;
}

async function apply(dir: string, entries: TarWriteEntry[], lower: string[] = []) {
  const tar = packTar(entries, { keepOrder: true });
  // Trailing zero records (tar pads to 10 KiB) are part of the diff ID too.
  const padded = Buffer.concat([tar, Buffer.alloc(4096)]);
  const result = await applyLayer(Readable.from([padded.subarray(0, 700), padded.subarray(700)]), join(dir, 'out'), lower);
  return { result, want: sha256(padded) };
}

test('files, dirs, links, devices and metadata land as the tar says; diff ID covers every byte', async (t) => {
  const dir = setup(t);
  const { result, want } = await apply(dir, [
    { name: 'ro', type: 'dir', mode: 0o555, mtime: 1000 },
    { name: 'ro/f', type: 'file', mode: 0o4755, uid: 1000, gid: 100, mtime: 2000, data: Buffer.from('data') },
    { name: 'ro/hard', type: 'hardlink', linkname: 'ro/f' },
    { name: 'deep/er/file', type: 'file', data: Buffer.from('implicit parents') },
    { name: 'sym', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'pipe', type: 'fifo', mode: 0o600 },
  ]);
  assert.equal(result.diffId, want);
  const out = join(dir, 'out');
  const f = statSync(join(out, 'ro/f'));
  assert.equal(f.mode & 0o7777, 0o4755, 'setuid survives chown');
  assert.equal(f.uid, 1000);
  assert.equal(f.gid, 100);
  assert.equal(f.mtimeMs, 2_000_000);
  assert.equal(statSync(join(out, 'ro')).mode & 0o7777, 0o555);
  assert.equal(statSync(join(out, 'ro')).mtimeMs, 1_000_000, 'dir times set after its children');
  assert.equal(statSync(join(out, 'ro/hard')).ino, f.ino);
  assert.equal(readFileSync(join(out, 'deep/er/file'), 'utf8'), 'implicit parents');
  assert.equal(readlinkSync(join(out, 'sym')), '/etc/passwd', 'symlinks are stored, never followed');
  const dev = lstatSync(join(out, 'null'));
  assert.ok(dev.isCharacterDevice());
  assert.equal(dev.rdev, (1 << 8) | 3);
  assert.ok(lstatSync(join(out, 'pipe')).isFIFO());
});

test('whiteout entries become 0:0 character devices', async (t) => {
  const dir = setup(t);
  await apply(dir, [{ name: 'etc/.wh.motd', type: 'file' }]);
  const st = lstatSync(join(dir, 'out', 'etc', 'motd'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, 0);
});

test('entries that try to leave the layer are refused', async (t) => {
  const dir = setup(t);
  await assert.rejects(apply(dir, [{ name: 'a/../../escape', type: 'file' }]), LayerError);
  const dir2 = setup(t);
  await assert.rejects(
    apply(dir2, [
      { name: 'link', type: 'symlink', linkname: '/tmp' },
      { name: 'link/owned', type: 'file', data: Buffer.from('x') },
    ]),
    (err: unknown) => err instanceof LayerError && /link\/owned/.test(err.message),
  );
  const dir3 = setup(t);
  await assert.rejects(apply(dir3, [{ name: 'h', type: 'hardlink', linkname: '../../etc/passwd' }]), LayerError);
});
