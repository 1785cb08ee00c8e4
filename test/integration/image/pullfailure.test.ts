// A pull that fails leaves nothing behind: not the blobs it had fetched before the failure, not
// the layers it had unpacked, not its temp files. Each kind of failure is made for real by a
// registry in this process that misbehaves on purpose (a real docker-registry cannot be told to
// cut a connection mid-blob); after each, the store's directories are looked at file by file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from '../../../agent/runtime/image/oci.js';
import { ImageStore } from '../../../agent/runtime/image/store.js';
import { packTar } from '../../../util/tar.js';
import { tempDir, writeLayout, type After } from './helpers.js';

type Fault = 'none' | 'corrupt' | 'cut' | 'bad-diff-id';

interface FakeImage {
  manifest: Buffer;
  blobs: Map<string, Buffer>;
  /** The last layer: the one the faults hit (the config and the first layer arrive fine). */
  lastLayer: string;
}

/** Two layers; the first one is also in the image loaded before the pulls (shared). */
function twoLayerImage(fault: Fault): FakeImage {
  const tars = [packTar([{ name: 'shared', type: 'file', data: Buffer.from('one') }]), packTar([{ name: 'top', type: 'file', data: Buffer.alloc(256 * 1024, 7) }])];
  const layers = tars.map((t) => gzipSync(t));
  const diffIds = tars.map((t) => sha256(t));
  if (fault === 'bad-diff-id') diffIds[1] = sha256(Buffer.from('something else'));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(l), size: l.length })),
    }),
  );
  const blobs = new Map([[sha256(config), config], ...layers.map((l) => [sha256(l), l] as [string, Buffer])]);
  return { manifest, blobs, lastLayer: sha256(layers[1] as Buffer) };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** A registry serving `app:v1`, failing the way `fault` says on the last layer. */
async function misbehavingRegistry(t: After, fault: Fault): Promise<string> {
  const image = twoLayerImage(fault);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v2/') return void res.writeHead(200).end('{}');
    if (path === '/v2/app/manifests/v1') {
      return void res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256(image.manifest) }).end(image.manifest);
    }
    const digest = /^\/v2\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
    const blob = digest ? image.blobs.get(digest) : undefined;
    if (!digest || !blob) return void res.writeHead(404).end();
    if (digest === image.lastLayer && fault === 'corrupt') return void res.writeHead(200).end(Buffer.concat([blob.subarray(0, blob.length - 1), Buffer.from([blob[blob.length - 1]! ^ 1])]));
    if (digest === image.lastLayer && fault === 'cut') {
      // Half the bytes, then the connection drops (a registry or a network going away mid-pull).
      res.writeHead(200, { 'Content-Length': String(blob.length) });
      res.write(blob.subarray(0, blob.length >> 1), () => res.destroy());
      return;
    }
    res.writeHead(200).end(blob);
  });
  const port = await listen(server);
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${port}/app:v1`;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const entries = (dir: string): string[] => readdirSync(dir).sort();

test('a failed pull leaves no blobs, layers or temp files; the images already there keep theirs', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'store');
  const store = new ImageStore(root);
  // An image already on the node, sharing the pulled image's first layer.
  const layout = join(dir, 'layout');
  writeLayout(layout, [{ layers: [[{ name: 'shared', type: 'file', data: Buffer.from('one') }]] }]);
  const [kept] = await store.load(layout, { reference: 'kept:1' });
  assert.ok(kept);
  const before = { blobs: entries(join(root, 'blobs', 'sha256')), layers: entries(join(root, 'layers')) };
  assert.equal(before.blobs.length, 3, 'manifest, config and layer of the loaded image');

  const failures: Array<[string, () => Promise<string>, RegExp]> = [
    ['a layer whose bytes do not match its digest', () => misbehavingRegistry(t, 'corrupt'), /hashes to/],
    ['a connection cut in the middle of a layer', () => misbehavingRegistry(t, 'cut'), /blob sha256:[0-9a-f]{64} .*download interrupted after \d+ of \d+ bytes/],
    ['a layer that unpacks to another diff ID than its config says', () => misbehavingRegistry(t, 'bad-diff-id'), /unpacks to sha256:/],
    ['a registry nobody answers at', async () => `127.0.0.1:${await closedPort()}/app:v1`, /127\.0\.0\.1/],
  ];
  for (const [what, registry, error] of failures) {
    const ref = await registry();
    await assert.rejects(store.pull(ref, { insecure: true }), error, what);
    assert.deepEqual(
      (await store.list()).map((i) => i.id),
      [kept.id],
      `${what}: no image recorded`,
    );
    assert.deepEqual(entries(join(root, 'blobs', 'sha256')), before.blobs, `${what}: only the kept image's blobs remain`);
    assert.deepEqual(entries(join(root, 'layers')), before.layers, `${what}: only the kept image's layers remain`);
    assert.deepEqual(entries(join(root, 'tmp')), [], `${what}: no temp files`);
  }

  // The same store then pulls the image whole from a registry that behaves.
  const good = await store.pull(await misbehavingRegistry(t, 'none'), { insecure: true });
  assert.equal(good.layers.length, 2);
  assert.equal(entries(join(root, 'layers')).length, 2, 'the shared layer is stored once');
});

test('what a pull killed with the agent left behind is collected when the store opens again', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'store');
  const layout = join(dir, 'layout');
  writeLayout(layout, [{ layers: [[{ name: 'a', type: 'file', data: Buffer.from('a') }]] }]);
  await new ImageStore(root).load(layout, { reference: 'kept:1' });
  const blobs = entries(join(root, 'blobs', 'sha256'));
  // A downloaded blob no image refers to yet, a half-unpacked layer, a partial download.
  writeFileSync(join(root, 'blobs', 'sha256', 'ab'.repeat(32)), 'orphan');
  mkdirSync(join(root, 'layers', 'cd'.repeat(32), 'diff'), { recursive: true });
  writeFileSync(join(root, 'tmp', 'download-123.part-1-x'), 'partial');

  const reopened = new ImageStore(root);
  assert.equal((await reopened.list()).length, 1);
  assert.deepEqual(entries(join(root, 'blobs', 'sha256')), blobs);
  assert.equal(entries(join(root, 'layers')).length, 1);
  assert.deepEqual(entries(join(root, 'tmp')), []);
});
