// Pulling from a real registry (Debian's docker-registry, distribution 2.8) on loopback: the test
// image goes in with skopeo and comes back through the store's Distribution client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestImage } from '../../../deploy/image/build.js';
import { ImageStore, type ImageRecord, type PullProgress } from '../../../agent/runtime/image/store.js';
import { RegistryError } from '../../../agent/runtime/image/registry.js';
import { mounts, startRegistry, tempDir, writeLayout, type After } from './helpers.js';
import { startTokenServer, tokenAuthYaml } from './tokenserver.js';

const execFileP = promisify(execFile);

function newStore(t: After): ImageStore {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-img-'));
  const store = new ImageStore(join(dir, 'store'));
  t.after(async () => {
    try {
      for (const r of await store.preparedRootfs()) await store.releaseRootfs(r.containerId);
    } finally {
      for (const m of mounts().filter((p) => p.startsWith(dir + '/'))) execFileSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return store;
}

/** Pushes with skopeo. Asynchronous: the token server skopeo asks lives in this process. */
async function skopeoCopy(from: string, to: string, all = false, creds?: string): Promise<void> {
  const args = ['copy', '--quiet', ...(all ? ['--all'] : []), ...(creds ? ['--dest-creds', creds] : []), '--dest-tls-verify=false', from, to];
  await execFileP('skopeo', args, { timeout: 120_000 });
}

test('pull from a real registry: same digests as built, and a mountable rootfs', async (t) => {
  const registry = await startRegistry(t);
  const dir = tempDir(t);
  const built = buildTestImage({ outDir: join(dir, 'oci') });
  await skopeoCopy(`oci:${join(dir, 'oci')}:latest`, `docker://${registry.host}/busybox:latest`);

  const store = newStore(t);
  const ref = `${registry.host}/busybox:latest`;
  const events: string[] = [];
  const image = await store.pull(ref, { onProgress: (p) => events.push(`${p.kind} ${p.digest} ${p.status}`) });
  assert.equal(image.manifestDigest, built.manifestDigest);
  assert.equal(image.id, built.configDigest);
  assert.equal(image.layers[0]?.digest, built.layerDigest);
  assert.equal(image.layers[0]?.diffId, built.diffId);
  assert.deepEqual(image.names, [ref]);
  assert.deepEqual(image.repoDigests, [`${registry.host}/busybox@${built.manifestDigest}`]);
  // Progress: each blob downloads, then the layer unpacks (byte events in between, any number).
  const layerEvents = [...new Set(events.filter((e) => e.startsWith(`layer ${built.layerDigest}`)))];
  assert.deepEqual(layerEvents, ['downloading', 'downloaded', 'extracting', 'done'].map((s) => `layer ${built.layerDigest} ${s}`));
  assert.ok(events.includes(`config ${built.configDigest} downloaded`));

  const rootfs = await store.prepareRootfs(ref, 'pulled', join(tempDir(t), 'rootfs'));
  assert.equal(readlinkSync(join(rootfs.path, 'bin', 'sh')), 'busybox');

  // By digest, the same image: nothing is downloaded again.
  const downloads = store.stats.blobDownloads;
  const byDigest = await store.pull(`${registry.host}/busybox@${built.manifestDigest}`);
  assert.equal(byDigest.id, image.id);
  assert.equal(store.stats.blobDownloads, downloads);
});

test('two concurrent pulls of one image share one download', async (t) => {
  const registry = await startRegistry(t);
  const dir = tempDir(t);
  buildTestImage({ outDir: join(dir, 'oci') });
  await skopeoCopy(`oci:${join(dir, 'oci')}:latest`, `docker://${registry.host}/busybox:latest`);
  const store = newStore(t);
  const ref = `${registry.host}/busybox:latest`;
  // The second caller joins once the first is under way; it still sees every state change.
  const first: string[] = [];
  const second: string[] = [];
  const states = (into: string[]) => (p: PullProgress) => {
    if (p.received === undefined) into.push(`${p.kind} ${p.status}`);
  };
  let joined: Promise<ImageRecord> | undefined;
  const a = await store.pull(ref, {
    onProgress: (p) => {
      states(first)(p);
      joined ??= store.pull(ref, { onProgress: states(second) });
    },
  });
  const b = await (joined as Promise<ImageRecord>);
  assert.equal(a.id, b.id);
  assert.ok(first.includes('layer done'), first.join(', '));
  assert.deepEqual(second, first, 'the caller that joined late sees the same states');
  assert.equal(store.stats.pulls, 1, 'one pull operation');
  assert.equal(store.stats.manifestFetches, 1);
  assert.equal(store.stats.blobDownloads, 2, 'config and layer, once each');
  assert.equal(store.stats.layerExtractions, 1);
});

test('a multi-arch index: the pull picks linux/amd64', async (t) => {
  const registry = await startRegistry(t);
  const dir = tempDir(t);
  const file = (name: string, text: string) => ({ name, type: 'file' as const, data: Buffer.from(text) });
  const { manifestDigests, topDigest } = writeLayout(join(dir, 'multi'), [
    { architecture: 'arm64', layers: [[file('arch', 'arm64')]] },
    { architecture: 'amd64', layers: [[file('arch', 'amd64')]] },
  ]);
  await skopeoCopy(`oci:${join(dir, 'multi')}:latest`, `docker://${registry.host}/multi:v1`, true);
  const store = newStore(t);
  const image = await store.pull(`${registry.host}/multi:v1`);
  assert.equal(image.architecture, 'amd64');
  assert.equal(image.manifestDigest, manifestDigests[1]);
  assert.equal(store.stats.manifestFetches, 2, 'the index, then the amd64 manifest');
  // The repo digest is what the tag points at, the index, as Docker records it.
  assert.deepEqual(image.repoDigests, [`${registry.host}/multi@${topDigest}`]);
  assert.equal((await store.inspect(`${registry.host}/multi@${topDigest}`)).id, image.id);
});

test('pulling a tag the registry does not have names the image and the 404', async (t) => {
  const registry = await startRegistry(t);
  const store = newStore(t);
  await assert.rejects(store.pull(`${registry.host}/nothing:here`), (err: unknown) => err instanceof RegistryError && err.status === 404 && err.message.includes('nothing:here'));
  assert.deepEqual(await store.list(), []);
});

test('a registry with basic auth: pulls with the right credentials, refuses without or with wrong ones', async (t) => {
  const registry = await startRegistry(t, { basicAuth: { username: 'alice', password: 's3cret' } });
  const dir = tempDir(t);
  const built = buildTestImage({ outDir: join(dir, 'oci') });
  await skopeoCopy(`oci:${join(dir, 'oci')}:latest`, `docker://${registry.host}/private/busybox:latest`, false, 'alice:s3cret');
  const store = newStore(t);
  const ref = `${registry.host}/private/busybox:latest`;
  await assert.rejects(store.pull(ref), /wants a username and password/);
  await assert.rejects(store.pull(ref, { auth: { username: 'alice', password: 'wrong' } }), (err: unknown) => err instanceof RegistryError && err.status === 401);
  const image = await store.pull(ref, { auth: { username: 'alice', password: 's3cret' } });
  assert.equal(image.manifestDigest, built.manifestDigest);
});

const hasOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('a registry with token auth: the store gets a Bearer token from the realm and pulls', { skip: !hasOpenssl && 'openssl (for the token certificate) not installed' }, async (t) => {
  const dir = tempDir(t);
  const user = { username: 'bob', password: 'hunter2' };
  const tokens = await startTokenServer(t, dir, user);
  const registry = await startRegistry(t, { extraYaml: tokenAuthYaml(tokens) });
  const built = buildTestImage({ outDir: join(dir, 'oci') });
  await skopeoCopy(`oci:${join(dir, 'oci')}:latest`, `docker://${registry.host}/team/busybox:v1`, false, 'bob:hunter2');
  const store = newStore(t);
  const ref = `${registry.host}/team/busybox:v1`;
  await assert.rejects(store.pull(ref, { auth: { username: 'bob', password: 'nope' } }), /token server/);
  const issuedBefore = tokens.issued;
  const image = await store.pull(ref, { auth: user });
  assert.equal(image.manifestDigest, built.manifestDigest);
  assert.equal(tokens.issued, issuedBefore + 1, 'one token for the whole pull');
});
