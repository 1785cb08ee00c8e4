// `shoal image …` against a real shoald outside any swarm: archives loaded from a file and from
// stdin (docker save and OCI), listed, inspected and removed; pulls from a real registry on
// loopback with progress; and every way an import can fail (a corrupt archive, a bad reference,
// an unreachable registry, a layer whose bytes do not match its digest) gives one clear line and
// leaves no image and no half-written file behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { buildTestImage } from '../../../deploy/image/build.js';
import { sha256 } from '../../../agent/runtime/image/oci.js';
import { packTar } from '../../../util/tar.js';
import { mulberry32 } from '../../support/prng.js';
import { startRegistry, tempDir, writeLayout } from '../image/helpers.js';
import { startTestDaemon } from './daemon.js';

const execFileP = promisify(execFile);

async function skopeoPush(layout: string, dest: string): Promise<void> {
  await execFileP('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${dest}`], { timeout: 120_000 });
}

test('image load of a docker save archive and an OCI archive, from a file and from stdin; ls, inspect, rm', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t, 'shoal-engine-img-');
  const built = buildTestImage({ outDir: join(dir, 'oci'), dockerArchive: join(dir, 'box.tar'), reference: 'shoal-test/box:v1' });
  const id12 = built.configDigest.slice(7, 19);

  const loaded = await d.shoal(['image', 'load', '-i', join(dir, 'box.tar')]);
  assert.equal(loaded.stderr, '');
  assert.equal(loaded.stdout, 'Loaded image: shoal-test/box:v1\n');
  // The OCI layout as an archive: its ref name is a bare tag, so the file names the repository.
  // Same config, so the same image: it gains a name. And from stdin, another name in the archive.
  execFileSync('tar', ['-C', join(dir, 'oci'), '-cf', join(dir, 'busybox-oci.tar'), '.']);
  buildTestImage({ outDir: join(dir, 'oci2'), dockerArchive: join(dir, 'stdin.tar'), reference: 'shoal-test/box:stdin' });
  const [ls, inspected, oci, fromStdin] = await Promise.all([
    d.shoal(['image', 'ls']),
    d.shoal(['image', 'inspect', '--format', '{{.Id}} {{.Config.Cmd}} {{.RootFS.Layers}} {{.Os}}', 'shoal-test/box:v1']),
    d.shoal(['image', 'load', '--input', join(dir, 'busybox-oci.tar')]),
    d.shoal(['image', 'load'], join(dir, 'stdin.tar')),
  ]);
  assert.match(ls.stdout, new RegExp(`^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\\n(.*\\n)*shoal-test/box +v1 +${id12} +\\d+ years ago +[\\d.]+MB\\n`));
  assert.equal(inspected.stdout, `${built.configDigest} [sh] [${built.diffId}] linux\n`, inspected.stderr);
  assert.equal(oci.stdout, 'Loaded image: busybox-oci:v1\n', oci.stderr);
  assert.equal(fromStdin.stdout, 'Loaded image: shoal-test/box:stdin\n', fromStdin.stderr);

  const [names, quiet, filtered] = await Promise.all([
    d.shoal(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']),
    d.shoal(['image', 'ls', '-q']),
    d.shoal(['image', 'ls', '--format', '{{.Tag}}', 'shoal-test/box:stdin']),
  ]);
  assert.deepEqual(names.stdout.trim().split('\n').sort(), [`busybox-oci:v1 ${id12}`, `shoal-test/box:stdin ${id12}`, `shoal-test/box:v1 ${id12}`]);
  assert.equal(quiet.stdout, `${id12}\n`, 'one image, however many names');
  assert.equal(filtered.stdout, 'stdin\n');

  // By name only that name goes; by ID every name and the image.
  const untag = await d.shoal(['image', 'rm', 'shoal-test/box:v1']);
  assert.equal(untag.stdout, 'Untagged: shoal-test/box:v1\n', untag.stderr);
  const byId = await d.shoal(['image', 'rm', id12]);
  assert.equal(byId.stdout, `Untagged: busybox-oci:v1\nUntagged: shoal-test/box:stdin\nDeleted: ${built.configDigest}\n`, byId.stderr);
  const [empty, missing, noFile] = await Promise.all([
    d.shoal(['image', 'ls', '-q']),
    d.shoal(['image', 'rm', 'shoal-test/box:gone']),
    d.shoal(['image', 'load', '-i', join(dir, 'nope.tar')]),
  ]);
  assert.equal(empty.stdout, '');
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, 'Error: No such image: shoal-test/box:gone\n');
  assert.equal(noFile.status, 1);
  assert.match(noFile.stderr, /^Error: cannot read nope\.tar: ENOENT/);
  assert.deepEqual(d.leftovers(), []);
});

test('a corrupt archive is refused naming what is wrong, and leaves no image behind', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t, 'shoal-engine-img-');
  // A docker save archive whose layer is not the one its config names.
  const said = packTar([{ name: 'hello.txt', type: 'file', data: Buffer.from('hello\n') }]);
  const actual = packTar([{ name: 'hello.txt', type: 'file', data: Buffer.from('HELLO\n') }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(said)] } }));
  writeFileSync(
    join(dir, 'mismatch.tar'),
    packTar([
      { name: 'manifest.json', type: 'file', data: Buffer.from(JSON.stringify([{ Config: 'config.json', RepoTags: ['shoal-test/bad:v1'], Layers: ['layer/layer.tar'] }])) },
      { name: 'config.json', type: 'file', data: config },
      { name: 'layer', type: 'dir' },
      { name: 'layer/layer.tar', type: 'file', data: actual },
    ]),
  );
  const mismatch = await d.shoal(['image', 'load', '-i', join(dir, 'mismatch.tar')]);
  assert.equal(mismatch.status, 1);
  assert.equal(mismatch.stdout, '');
  assert.match(mismatch.stderr, new RegExp(`^Error: image load: layer sha256:[0-9a-f]{64} unpacks to ${sha256(actual)}, but the image config says ${sha256(said)}\\n$`));

  const rand = mulberry32(7);
  writeFileSync(join(dir, 'noise.tar'), Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rand() * 256))));
  const noise = await d.shoal(['image', 'load', '-i', join(dir, 'noise.tar')]);
  assert.equal(noise.status, 1);
  assert.match(noise.stderr, /^Error: image load: /);

  assert.equal((await d.shoal(['image', 'ls', '-q'])).stdout, '');
  assert.deepEqual(readdirSync(join(d.dataRoot, 'agent', 'images', 'layers')), [], 'no layer unpacked halfway');
  assert.deepEqual(d.leftovers(), []);
});

test('image pull from a registry shows progress; a bad reference, an unreachable registry and a corrupt layer fail clearly and leave no image', async (t) => {
  const d = await startTestDaemon(t);
  const registry = await startRegistry(t);
  const dir = tempDir(t, 'shoal-engine-img-');
  const built = buildTestImage({ outDir: join(dir, 'oci') });
  // Also a corrupt layer: pushed intact, then its bytes flipped in the registry's storage (same
  // size), so the registry serves content that does not hash to the digest the manifest names.
  const corrupt = join(dir, 'corrupt');
  writeLayout(corrupt, [{ layers: [[{ name: 'data.txt', type: 'file', data: Buffer.from('corrupt me\n'.repeat(100)) }]] }]);
  const index = JSON.parse(readFileSync(join(corrupt, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(readFileSync(join(corrupt, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> };
  const layerDigest = manifest.layers[0]!.digest;
  await Promise.all([skopeoPush(join(dir, 'oci'), `${registry.host}/shoal/box:latest`), skopeoPush(corrupt, `${registry.host}/shoal/corrupt:latest`)]);
  const storage = join(dirname(registry.process.spawnargs[2]!), 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256');
  const blob = join(storage, layerDigest.slice(7, 9), layerDigest.slice(7), 'data');
  writeFileSync(blob, Buffer.from(readFileSync(blob).map((b) => b ^ 0xff)));

  const ref = `${registry.host}/shoal/box`;
  const pulled = await d.shoal(['image', 'pull', ref]);
  assert.equal(pulled.status, 0, pulled.stderr);
  const lines = pulled.stdout.split('\n');
  assert.deepEqual(lines.slice(0, 2), ['Using default tag: latest', 'latest: Pulling from shoal/box']);
  const layer = built.layerDigest.slice(7, 19);
  // One line per state change of the layer (bytes never print a line when stdout is not a terminal).
  assert.deepEqual(
    lines.filter((l) => l.startsWith(`${layer}: `)),
    ['Pulling fs layer', 'Downloading', 'Download complete', 'Extracting', 'Pull complete'].map((s) => `${layer}: ${s}`),
  );
  assert.deepEqual(lines.slice(-4), [`Digest: ${built.manifestDigest}`, `Status: Downloaded newer image for ${ref}:latest`, `${ref}:latest`, '']);

  // Port 1 (tcpmux) has nothing listening on any machine this runs on: connections are refused.
  const port = 1;
  const [again, upToDate, listed, bad, noTag, unreachable, mismatch] = await Promise.all([
    d.shoal(['image', 'pull', '-q', `${ref}:latest`]),
    d.shoal(['image', 'pull', `${ref}:latest`]),
    d.shoal(['image', 'ls', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}']),
    d.shoal(['image', 'pull', `${registry.host}/Shoal/Box`]),
    d.shoal(['image', 'pull', `${ref}:nope`]),
    d.shoal(['image', 'pull', `127.0.0.1:${port}/shoal/box:latest`]),
    d.shoal(['image', 'pull', `${registry.host}/shoal/corrupt:latest`]),
  ]);
  assert.equal(again.stdout, `${ref}:latest\n`);
  assert.match(upToDate.stdout, new RegExp(`^latest: Pulling from shoal/box\\n${layer}: Already exists\\nDigest: ${built.manifestDigest}\\nStatus: Image is up to date for ${ref}:latest\\n${ref}:latest\\n$`));
  const before = listed.stdout;
  assert.equal(before, `${ref} latest ${built.manifestDigest}\n`);
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, `Error: invalid image reference "${registry.host}/Shoal/Box": name component "Shoal" must be lowercase letters, digits and separators\n`);
  assert.equal(noTag.status, 1);
  assert.match(noTag.stderr, new RegExp(`^Error: manifest ${ref}:nope: GET http://${registry.host}/v2/shoal/box/manifests/nope returned 404 \\(no such image or tag\\?\\)`));
  assert.equal(unreachable.status, 1);
  assert.match(unreachable.stderr, new RegExp(`^Error: cannot pull 127\\.0\\.0\\.1:${port}/shoal/box:latest: registry 127\\.0\\.0\\.1:${port} is unreachable \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)\\n$`));
  assert.equal(mismatch.status, 1);
  assert.match(mismatch.stderr, new RegExp(`^Error: cannot pull ${registry.host}/shoal/corrupt:latest: blob ${layerDigest} of ${registry.host}/shoal/corrupt: downloaded content hashes to sha256:[0-9a-f]{64}\\n$`));

  // Nothing of the failed pulls: the one good image only, no stray download, no corrupt blob.
  assert.equal((await d.shoal(['image', 'ls', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}'])).stdout, before);
  assert.deepEqual(d.leftovers(), []);
  assert.equal(existsSync(join(d.dataRoot, 'agent', 'images', 'blobs', 'sha256', layerDigest.slice(7))), false);
});
