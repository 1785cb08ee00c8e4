// The test image every container test runs: built from the machine's busybox-static, it must be
// a valid OCI image layout (checked blob by blob, and by skopeo) and byte-for-byte reproducible.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { buildTestImage, mediaTypes } from '../../../deploy/image/build.js';
import { unpackTar } from '../../../util/tar.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Reads a blob and checks it is what its descriptor says: name = sha256 of content, size. */
function blob(layout: string, d: Descriptor): Buffer {
  assert.match(d.digest, /^sha256:[0-9a-f]{64}$/);
  const data = readFileSync(join(layout, 'blobs', 'sha256', d.digest.slice(7)));
  assert.equal(sha256(data), d.digest, `blob ${d.digest} content hash`);
  assert.equal(data.length, d.size, `blob ${d.digest} size`);
  return data;
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-image-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('building twice gives the same manifest digest, and the same bytes', (t) => {
  const dir = tempDir(t);
  const a = buildTestImage({ outDir: join(dir, 'a') });
  const b = buildTestImage({ outDir: join(dir, 'b') });
  assert.equal(a.manifestDigest, b.manifestDigest);
  assert.equal(a.layerDigest, b.layerDigest);
  assert.deepEqual(readFileSync(join(dir, 'a', 'index.json')), readFileSync(join(dir, 'b', 'index.json')));
  // Rebuilding into the same directory replaces, and leaves no stale blob behind.
  buildTestImage({ outDir: join(dir, 'a') });
  assert.equal(execFileSync('ls', [join(dir, 'a', 'blobs', 'sha256')], { encoding: 'utf8' }).trim().split('\n').length, 3);
});

test('the layout is OCI: index -> manifest -> config -> layer, every digest and size checked', async (t) => {
  const dir = tempDir(t);
  const built = buildTestImage({ outDir: dir });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { schemaVersion: number; manifests: Descriptor[] };
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.manifests.length, 1);
  const md = index.manifests[0] as Descriptor;
  assert.equal(md.mediaType, mediaTypes.manifest);
  assert.equal(md.annotations?.['org.opencontainers.image.ref.name'], 'latest');
  assert.equal(md.digest, built.manifestDigest);

  const manifest = JSON.parse(blob(dir, md).toString()) as { schemaVersion: number; mediaType: string; config: Descriptor; layers: Descriptor[] };
  assert.equal(manifest.schemaVersion, 2);
  assert.equal(manifest.mediaType, mediaTypes.manifest);
  assert.equal(manifest.config.mediaType, mediaTypes.config);
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0]?.mediaType, mediaTypes.layerGzip);

  const config = JSON.parse(blob(dir, manifest.config).toString()) as {
    created: string;
    architecture: string;
    os: string;
    config: { Entrypoint?: string[]; Cmd: string[]; Env: string[] };
    rootfs: { type: string; diff_ids: string[] };
  };
  assert.equal(config.architecture, 'amd64');
  assert.equal(config.os, 'linux');
  assert.equal(config.created, '1970-01-01T00:00:00Z');
  assert.equal(config.config.Entrypoint, undefined);
  assert.deepEqual(config.config.Cmd, ['sh']);
  assert.ok(config.config.Env.some((e) => /^PATH=.*(^|:)\/bin(:|$)/.test(e.replace(/^PATH=/, 'PATH=:'))), 'PATH has /bin');
  assert.equal(config.rootfs.type, 'layers');

  const gz = blob(dir, manifest.layers[0] as Descriptor);
  assert.deepEqual(gz.subarray(0, 2), Buffer.from([0x1f, 0x8b]), 'layer is gzip');
  const tar = gunzipSync(gz);
  assert.deepEqual(config.rootfs.diff_ids, [sha256(tar)], 'diff_id is the uncompressed layer digest');

  const entries = new Map((await unpackTar(tar)).map((e) => [e.name, e]));
  const busybox = entries.get('bin/busybox');
  assert.equal(busybox?.type, 'file');
  assert.deepEqual(busybox.data, readFileSync('/bin/busybox'));
  assert.equal(busybox.mode, 0o755);
  for (const applet of ['sh', 'ls', 'cat', 'httpd', 'wget', 'nc', 'sleep', 'ip']) {
    const e = entries.get(`bin/${applet}`);
    assert.equal(e?.type, 'symlink', `bin/${applet} is a symlink`);
    assert.equal(e.linkname, 'busybox');
  }
  assert.equal(built.applets.length, [...entries.values()].filter((e) => e.type === 'symlink').length);
  assert.equal(entries.get('tmp')?.mode, 0o1777);
  assert.equal(entries.get('root')?.mode, 0o700);
  for (const d of ['proc', 'sys', 'dev', 'etc', 'var/www']) assert.equal(entries.get(d)?.type, 'dir', d);
  assert.match(entries.get('etc/passwd')?.data.toString() ?? '', /^root:x:0:0:/m);
  assert.match(entries.get('etc/passwd')?.data.toString() ?? '', /^nobody:x:65534:65534:/m);
  assert.match(entries.get('etc/group')?.data.toString() ?? '', /^nobody:x:65534:/m);
  assert.equal(entries.has('etc/hosts'), false, 'the runtime writes /etc/hosts');
  for (const e of entries.values()) {
    assert.equal(e.uid, 0, e.name);
    assert.equal(e.gid, 0, e.name);
    assert.equal(e.mtime, 0, e.name);
  }
});

test('skopeo accepts the OCI layout and the docker archive', { skip: !hasCommand('skopeo') && 'skopeo not installed' }, (t) => {
  const dir = tempDir(t);
  const archive = join(dir, 'busybox.tar');
  const built = buildTestImage({ outDir: join(dir, 'oci'), dockerArchive: archive });
  const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${join(dir, 'oci')}:latest`]);
  assert.equal(sha256(raw), built.manifestDigest);
  const info = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${archive}`], { encoding: 'utf8' })) as { Architecture: string; Os: string; Layers: string[] };
  assert.equal(info.Os, 'linux');
  assert.equal(info.Layers.length, 1);
});

test('the docker archive holds manifest.json, the config and the uncompressed layer', async (t) => {
  const dir = tempDir(t);
  const archive = join(dir, 'busybox.tar');
  const built = buildTestImage({ outDir: join(dir, 'oci'), dockerArchive: archive });
  assert.ok(existsSync(archive) && statSync(archive).size > 1_000_000);
  const files = new Map((await unpackTar(readFileSync(archive))).map((e) => [e.name, e.data]));
  const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? 'null') as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0]?.RepoTags, ['busybox:latest']);
  assert.equal(sha256(files.get(manifest[0]?.Config ?? '') ?? Buffer.alloc(0)), built.configDigest);
  assert.equal(sha256(files.get(manifest[0]?.Layers[0] ?? '') ?? Buffer.alloc(0)), built.diffId);
});

test('the command line entry point writes the layout where --out says', (t) => {
  const dir = tempDir(t);
  const script = new URL('../../../deploy/image/build.js', import.meta.url).pathname;
  const out = execFileSync(process.execPath, [script, '--out', join(dir, 'img')], { encoding: 'utf8' });
  assert.match(out, /sha256:[0-9a-f]{64}/);
  assert.ok(existsSync(join(dir, 'img', 'index.json')));
  assert.throws(() => execFileSync(process.execPath, [script, '--out', join(dir, 'img2'), '--busybox', '/nonexistent/busybox'], { stdio: 'pipe' }), /\/nonexistent\/busybox/);
});
