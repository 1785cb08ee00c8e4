// The image store against the real kernel: images loaded from OCI layouts and docker archives,
// layers unpacked once, and container root filesystems as real overlay mounts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildTestImage } from '../../../deploy/image/build.js';
import { ImageInUseError, ImageNotFoundError, ImageStore } from '../../../agent/runtime/image/store.js';
import { mounts, writeLayout, type After } from './helpers.js';

/**
 * A temp dir and a store in it, torn down in one hook when the test ends, pass or fail: rootfs
 * mounts released first, then the directory removed.
 */
function newStore(t: After, options: ConstructorParameters<typeof ImageStore>[1] = {}): { dir: string; store: ImageStore } {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-img-'));
  const store = new ImageStore(join(dir, 'store'), options);
  t.after(async () => {
    try {
      for (const r of await store.preparedRootfs()) await store.releaseRootfs(r.containerId);
    } finally {
      for (const m of mounts().filter((p) => p.startsWith(dir + '/')).sort().reverse()) execFileSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return { dir, store };
}

test('load an OCI layout, mount a rootfs: bin/sh is there and writes land in the upper dir only', async (t) => {
  const { dir, store } = newStore(t);
  const built = buildTestImage({ outDir: join(dir, 'busybox') });
  const [image] = await store.load(join(dir, 'busybox'));
  assert.ok(image);
  assert.equal(image.manifestDigest, built.manifestDigest);
  assert.equal(image.id, built.configDigest);
  assert.deepEqual(image.names, ['docker.io/library/busybox:latest']);
  assert.deepEqual(image.config.Cmd, ['sh']);
  assert.equal((await store.inspect('busybox')).id, image.id);
  assert.equal((await store.inspect(image.id.slice(7, 19))).id, image.id, 'short ID');
  assert.equal((await store.list()).length, 1);

  const target = join(dir, 'rootfs');
  const rootfs = await store.prepareRootfs('busybox:latest', 'c1', target);
  assert.ok(mounts().includes(target), 'overlay mounted');
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === target);
  assert.match(line ?? '', /^overlay \S+ overlay /);
  assert.equal(readlinkSync(join(target, 'bin/sh')), 'busybox');
  assert.deepEqual(readFileSync(join(target, 'bin/busybox')), readFileSync('/bin/busybox'));
  assert.equal(lstatSync(join(target, 'tmp')).mode & 0o7777, 0o1777);

  writeFileSync(join(target, 'tmp', 'written'), 'hello');
  unlinkSync(join(target, 'bin', 'ls'));
  assert.equal(readFileSync(join(rootfs.upperDir, 'tmp', 'written'), 'utf8'), 'hello');
  assert.ok(lstatSync(join(rootfs.upperDir, 'bin', 'ls')).isCharacterDevice(), 'deletion is a whiteout in the upper dir');
  const layerDir = store.layerDir(image.layers[0]?.chainId ?? '');
  assert.equal(existsSync(join(layerDir, 'tmp', 'written')), false, 'the shared layer is untouched');
  assert.equal(readlinkSync(join(layerDir, 'bin', 'ls')), 'busybox');

  // A second container on the same image shares the layer and sees none of c1's writes.
  const target2 = join(dir, 'rootfs2');
  await store.prepareRootfs(image.id, 'c2', target2);
  assert.equal(existsSync(join(target2, 'tmp', 'written')), false);
  assert.equal(readlinkSync(join(target2, 'bin', 'ls')), 'busybox');
  assert.equal(store.stats.layerExtractions, 1);

  await store.releaseRootfs('c1');
  await store.releaseRootfs('c2');
  assert.equal(mounts().includes(target), false, 'unmounted');
  assert.equal(mounts().includes(target2), false, 'unmounted');
  assert.equal(existsSync(target), false);
  assert.equal(existsSync(rootfs.upperDir), false, 'upper dir removed');
  await store.releaseRootfs('c1'); // twice is fine
});

test('an image in use cannot be removed unless forced; removal deletes its layers and blobs', async (t) => {
  let runtimeSaysInUse = false;
  const { dir, store } = newStore(t, { isImageInUse: () => runtimeSaysInUse });
  buildTestImage({ outDir: join(dir, 'busybox') });
  const [image] = await store.load(join(dir, 'busybox'));
  assert.ok(image);
  await store.prepareRootfs('busybox', 'user1', join(dir, 'mnt'));
  await assert.rejects(store.remove('busybox'), (err: unknown) => err instanceof ImageInUseError && /user1/.test(err.message));
  await store.releaseRootfs('user1');
  runtimeSaysInUse = true;
  await assert.rejects(store.remove('busybox'), ImageInUseError);
  runtimeSaysInUse = false;
  assert.deepEqual(await store.remove('busybox'), { untagged: ['busybox:latest'], deleted: [image.id] });
  await assert.rejects(store.inspect('busybox'), ImageNotFoundError);
  assert.deepEqual(readdirSync(join(dir, 'store', 'layers')), []);
  assert.deepEqual(readdirSync(join(dir, 'store', 'blobs', 'sha256')), []);
});

test('a docker save archive loads under its RepoTags and shares the unpacked layer', async (t) => {
  const { dir, store } = newStore(t);
  const built = buildTestImage({ outDir: join(dir, 'oci'), dockerArchive: join(dir, 'busybox.tar'), reference: 'example.com/tools/busybox:1.0' });
  const [fromArchive] = await store.load(join(dir, 'busybox.tar'));
  assert.ok(fromArchive);
  assert.deepEqual(fromArchive.names, ['example.com/tools/busybox:1.0']);
  assert.equal(fromArchive.id, built.configDigest);
  assert.equal(fromArchive.layers[0]?.diffId, built.diffId);
  await store.load(join(dir, 'oci'));
  assert.equal(store.stats.layerExtractions, 1, 'same layer stack: unpacked once');
  const rootfs = await store.prepareRootfs('example.com/tools/busybox:1.0', 'c1', join(dir, 'mnt'));
  assert.equal(readlinkSync(join(rootfs.path, 'bin', 'sh')), 'busybox');
});

test('whiteouts and opaque directories hide what lower layers hold', async (t) => {
  const { dir, store } = newStore(t);
  const file = (name: string, text: string) => ({ name, type: 'file' as const, data: Buffer.from(text) });
  writeLayout(join(dir, 'layout'), [
    {
      layers: [
        [file('keep', 'k'), file('gone', 'g'), { name: 'a', type: 'dir' }, file('a/x', 'x'), { name: 'a/sub', type: 'dir' }, file('a/sub/y', 'y'), { name: 'b', type: 'dir' }, file('b/z', 'z')],
        [file('.wh.gone', ''), { name: 'a', type: 'dir' }, file('a/.wh..wh..opq', ''), file('a/new', 'n'), { name: 'a/sub', type: 'dir' }, file('a/sub/w', 'w'), file('b/.wh.z', ''), file('b/add', 'a')],
      ],
    },
  ]);
  await store.load(join(dir, 'layout'), { reference: 'whiteouts:test' });
  const target = join(dir, 'mnt');
  await store.prepareRootfs('whiteouts:test', 'c1', target);
  assert.equal(readFileSync(join(target, 'keep'), 'utf8'), 'k');
  assert.equal(existsSync(join(target, 'gone')), false, '.wh.gone removed the lower file');
  assert.deepEqual(readdirSync(join(target, 'a')).sort(), ['new', 'sub'], 'opaque a/ shows only the upper layer');
  assert.deepEqual(readdirSync(join(target, 'a', 'sub')), ['w'], 'opaque reaches into directories both layers have');
  assert.deepEqual(readdirSync(join(target, 'b')), ['add'], 'b is not opaque: only z is hidden');
  // A new file in the mounted, once-opaque directory is an ordinary upper-dir write.
  mkdirSync(join(target, 'a', 'more'));
  assert.ok(readdirSync(join(target, 'a')).includes('more'));
});

test('loading a layout whose blob does not match its digest fails and names the blob', async (t) => {
  const { dir, store } = newStore(t);
  const built = buildTestImage({ outDir: join(dir, 'busybox') });
  const configPath = join(dir, 'busybox', 'blobs', 'sha256', built.configDigest.slice(7));
  writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('"sh"', '"ash"'));
  await assert.rejects(store.load(join(dir, 'busybox')), new RegExp(built.configDigest));
  assert.deepEqual(await store.list(), []);
});

test('an OCI layout packed as a tar, and a gzipped docker archive, load like their unpacked forms', async (t) => {
  const { dir, store } = newStore(t);
  const built = buildTestImage({ outDir: join(dir, 'oci'), dockerArchive: join(dir, 'docker.tar') });
  execFileSync('tar', ['-C', join(dir, 'oci'), '-cf', join(dir, 'busybox-oci.tar'), '.']);
  execFileSync('gzip', ['-k', join(dir, 'docker.tar')]);
  const [fromOciTar] = await store.load(join(dir, 'busybox-oci.tar'));
  assert.equal(fromOciTar?.manifestDigest, built.manifestDigest);
  assert.deepEqual(fromOciTar?.names, ['docker.io/library/busybox-oci:latest'], 'repository from the file name, tag from the ref name');
  const [fromGz] = await store.load(join(dir, 'docker.tar.gz'), { reference: 'renamed:v9' });
  assert.equal(fromGz?.id, built.configDigest);
  assert.ok(fromGz?.names.includes('docker.io/library/renamed:v9'));
  assert.deepEqual(readdirSync(join(dir, 'store', 'tmp')), [], 'unpacking leftovers removed');
});

test('a new store on the same root (an agent restart) sees the images and releases old mounts', async (t) => {
  const { dir, store } = newStore(t);
  buildTestImage({ outDir: join(dir, 'busybox') });
  const [image] = await store.load(join(dir, 'busybox'));
  const target = join(dir, 'rootfs');
  await store.prepareRootfs('busybox', 'survivor', target);
  const again = await store.prepareRootfs('busybox', 'survivor', target);
  assert.equal(mounts().filter((m) => m === target).length, 1, 'preparing twice mounts once');
  assert.equal(again.path, target);

  const restarted = new ImageStore(join(dir, 'store'));
  assert.equal((await restarted.inspect('busybox')).id, image?.id);
  assert.deepEqual((await restarted.preparedRootfs()).map((r) => r.containerId), ['survivor']);
  await restarted.releaseRootfs('survivor');
  assert.equal(mounts().includes(target), false);
  assert.deepEqual(await store.preparedRootfs(), []);
});
