// The Distribution client's auth and redirect handling, against a small fake registry in this
// process (a real docker-registry runs in the integration tests; this one can demand tokens).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { packTar } from '../../../util/tar.js';
import { sha256 } from '../../../agent/runtime/image/oci.js';
import { parseChallenge, RegistryClient, RegistryError } from '../../../agent/runtime/image/registry.js';
import { ImageStore } from '../../../agent/runtime/image/store.js';

interface Fake {
  port: number;
  requests: Array<{ method: string; url: string; authorization?: string }>;
  manifestDigest: string;
  layerDigest: string;
  configDigest: string;
}

type AuthMode = 'bearer' | 'basic';

/** A registry for `team/app:v1` that wants auth, redirects blob downloads to "storage". */
async function fakeRegistry(t: { after: (fn: () => Promise<void>) => void }, mode: AuthMode, opts: { corruptLayer?: boolean } = {}): Promise<Fake> {
  const tar = packTar([{ name: 'hello', type: 'file', data: Buffer.from('world') }]);
  const layer = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  const blobs = new Map([
    [sha256(layer), opts.corruptLayer ? Buffer.concat([layer, Buffer.from('x')]) : layer],
    [sha256(config), config],
  ]);
  const fake: Fake = { port: 0, requests: [], manifestDigest: sha256(manifest), layerDigest: sha256(layer), configDigest: sha256(config) };
  const basic = 'Basic ' + Buffer.from('alice:s3cret').toString('base64');
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    fake.requests.push({ method: req.method ?? '', url: url.pathname, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    if (url.pathname === '/token') {
      if (req.headers.authorization !== basic || url.searchParams.get('scope') !== 'repository:team/app:pull' || url.searchParams.get('service') !== 'fake') {
        res.writeHead(401).end('bad credentials');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ access_token: 'tok-123' }));
      return;
    }
    if (url.pathname.startsWith('/storage/')) {
      // Storage is another service: registry credentials must not leak to it.
      if (req.headers.authorization) res.writeHead(400).end('credentials sent to storage');
      else res.writeHead(200).end(blobs.get(url.pathname.slice('/storage/'.length)));
      return;
    }
    const want = mode === 'bearer' ? 'Bearer tok-123' : basic;
    if (req.headers.authorization !== want) {
      const challenge = mode === 'bearer' ? `Bearer realm="http://127.0.0.1:${fake.port}/token",service="fake",scope="repository:team/app:pull"` : 'Basic realm="fake"';
      res.writeHead(401, { 'WWW-Authenticate': challenge }).end();
      return;
    }
    if (url.pathname === '/v2/team/app/manifests/v1' || url.pathname === `/v2/team/app/manifests/${fake.manifestDigest}`) {
      res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json', 'Docker-Content-Digest': fake.manifestDigest }).end(manifest);
      return;
    }
    const blob = /^\/v2\/team\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (blob && blobs.has(blob[1] as string)) {
      // Redirect to a differently spelled host, as registries send clients to S3 or a CDN.
      res.writeHead(307, { Location: `http://localhost:${fake.port}/storage/${blob[1]}` }).end();
      return;
    }
    res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  };
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  fake.port = typeof addr === 'object' && addr ? addr.port : 0;
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return fake;
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-regunit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('WWW-Authenticate challenges parse into scheme and parameters', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
  });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
});

test('Bearer auth: a token fetched with the credentials, then manifest and blob (through a redirect)', async (t) => {
  const fake = await fakeRegistry(t, 'bearer');
  const dir = tempDir(t);
  const client = new RegistryClient(`127.0.0.1:${fake.port}`, 'team/app', { auth: { username: 'alice', password: 's3cret' } });
  const m = await client.getManifest('v1');
  assert.equal(m.digest, fake.manifestDigest);
  assert.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  await client.fetchBlob(fake.layerDigest, join(dir, 'layer'));
  assert.equal(sha256(readFileSync(join(dir, 'layer'))), fake.layerDigest);
  assert.equal(fake.requests.filter((r) => r.url === '/token').length, 1, 'the token is reused');
  assert.ok(fake.requests.filter((r) => r.url.startsWith('/storage/')).every((r) => r.authorization === undefined));
});

test('Bearer auth with wrong credentials fails with the token server status', async (t) => {
  const fake = await fakeRegistry(t, 'bearer');
  const client = new RegistryClient(`127.0.0.1:${fake.port}`, 'team/app', { auth: { username: 'alice', password: 'wrong' } });
  await assert.rejects(client.getManifest('v1'), (err: unknown) => err instanceof RegistryError && err.status === 401 && /token server/.test(err.message));
});

test('Basic auth: credentials sent after the challenge; none given is a clear error', async (t) => {
  const fake = await fakeRegistry(t, 'basic');
  const ok = new RegistryClient(`127.0.0.1:${fake.port}`, 'team/app', { auth: { username: 'alice', password: 's3cret' } });
  assert.equal((await ok.getManifest(fake.manifestDigest)).digest, fake.manifestDigest);
  const anonymous = new RegistryClient(`127.0.0.1:${fake.port}`, 'team/app');
  await assert.rejects(anonymous.getManifest('v1'), /wants a username and password/);
});

test('a blob whose bytes do not match its digest is refused and not kept', async (t) => {
  const fake = await fakeRegistry(t, 'bearer', { corruptLayer: true });
  const dir = tempDir(t);
  const store = new ImageStore(join(dir, 'store'));
  await assert.rejects(store.pull(`127.0.0.1:${fake.port}/team/app:v1`, { auth: { username: 'alice', password: 's3cret' } }), new RegExp(`${fake.layerDigest}.*hashes to`));
  assert.deepEqual(await store.list(), []);
});

test('the store pulls a Docker schema 2 image through token auth', async (t) => {
  const fake = await fakeRegistry(t, 'bearer');
  const dir = tempDir(t);
  const store = new ImageStore(join(dir, 'store'));
  const image = await store.pull(`127.0.0.1:${fake.port}/team/app:v1`, { auth: { username: 'alice', password: 's3cret' } });
  assert.equal(image.manifestDigest, fake.manifestDigest);
  assert.deepEqual(image.config.Cmd, ['/hello']);
  assert.equal(readFileSync(join(store.layerDir(image.layers[0]?.diffId ?? ''), 'hello'), 'utf8'), 'world');
});
