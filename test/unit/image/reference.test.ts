// Image references spelled as Docker users spell them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { familiarName, formatReference, parseReference, ReferenceError } from '../../../agent/runtime/image/reference.js';
import { chainIds, pickPlatform, sha256 } from '../../../agent/runtime/image/oci.js';

const digest = 'sha256:' + 'ab'.repeat(32);

test('references normalize the way Docker does', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['team/app', 'docker.io/team/app:latest'],
    ['localhost/app:v1', 'localhost/app:v1'],
    ['127.0.0.1:5000/busybox:latest', '127.0.0.1:5000/busybox:latest'],
    ['registry.example.com/a/b/c:v2', 'registry.example.com/a/b/c:v2'],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    [`busybox:1@${digest}`, `docker.io/library/busybox:1@${digest}`],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
  ];
  for (const [input, want] of cases) assert.equal(formatReference(parseReference(input)), want, input);
});

test('familiar names drop what Docker leaves unsaid', () => {
  assert.equal(familiarName('docker.io/library/busybox:latest'), 'busybox:latest');
  assert.equal(familiarName('docker.io/team/app:v1'), 'team/app:v1');
  assert.equal(familiarName('127.0.0.1:5000/busybox:latest'), '127.0.0.1:5000/busybox:latest');
});

test('bad references are errors that quote them', () => {
  for (const bad of ['', 'UPPER/case', 'busybox:bad tag', 'busybox@sha256:123', 'a//b']) {
    assert.throws(() => parseReference(bad), (err: unknown) => err instanceof ReferenceError && err.message.includes(JSON.stringify(bad)), bad);
  }
});

test('chain IDs: the first is the diff ID, each next hashes parent and diff ID', () => {
  const a = sha256('a');
  const b = sha256('b');
  assert.deepEqual(chainIds([a, b]), [a, sha256(`${a} ${b}`)]);
});

test('an index yields the linux/amd64 manifest, or an error listing the platforms it has', () => {
  const m = (arch: string) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(arch), size: 1, platform: { os: 'linux', architecture: arch } });
  const index = { schemaVersion: 2, manifests: [m('arm64'), m('amd64'), m('s390x')] };
  assert.equal(pickPlatform(index, 'x', { os: 'linux', architecture: 'amd64' }).digest, sha256('amd64'));
  assert.throws(() => pickPlatform({ schemaVersion: 2, manifests: [m('arm64')] }, 'image foo', { os: 'linux', architecture: 'amd64' }), /image foo has no image for linux\/amd64 \(it has: linux\/arm64\)/);
});
