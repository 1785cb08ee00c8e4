// What `shoal image …` prints, as `docker image …` prints it: the ls table (sizes in go-units'
// decimal units, "N years ago", one row per name, <none> for an unnamed image), the inspect
// document's keys, and the pull display on a terminal and on a pipe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageSummary } from '../../../proto/gen/local.js';
import { formatRows } from '../../../cli/format.js';
import { humanSize, imageHeaders, imageRows, imageTable, inspectDocument, progressBar, pullHeader, pulledDigest, PullDisplay, splitTag } from '../../../cli/commands/image.js';

const DAY = 24 * 3600 * 1000;
const NOW = Date.parse('2024-06-01T12:00:00Z');

function image(fields: Partial<ImageSummary>): ImageSummary {
  return { id: 'sha256:' + 'a'.repeat(64), repoTags: [], repoDigests: [], created: '', size: 0, architecture: 'amd64', os: 'linux', ...fields };
}

test('sizes in decimal units with three significant digits, like go-units HumanSizeWithPrecision', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(1000), '1kB');
  assert.equal(humanSize(1_982_364), '1.98MB');
  assert.equal(humanSize(142_000_000), '142MB');
  assert.equal(humanSize(1_234_567_890), '1.23GB');
});

test('a name splits into repository and tag at the last colon after the last slash', () => {
  assert.deepEqual(splitTag('busybox:latest'), ['busybox', 'latest']);
  assert.deepEqual(splitTag('198.18.0.254:5000/shoal/busybox:v1'), ['198.18.0.254:5000/shoal/busybox', 'v1']);
  assert.deepEqual(splitTag('198.18.0.254:5000/shoal/busybox'), ['198.18.0.254:5000/shoal/busybox', '<none>']);
});

test('image ls: a row per name, newest image first, unnamed images as <none>', () => {
  const images = [
    image({ id: 'sha256:' + '1'.repeat(64), repoTags: ['busybox:latest', 'busybox:1.36'], created: '1970-01-01T00:00:00Z', size: 1_982_364 }),
    image({ id: 'sha256:' + '2'.repeat(64), repoTags: ['reg:5000/app:v2'], repoDigests: ['reg:5000/app@sha256:' + 'f'.repeat(64)], created: new Date(NOW - 3 * DAY).toISOString(), size: 142_000_000 }),
    image({ id: 'sha256:' + '3'.repeat(64), repoDigests: ['reg:5000/old@sha256:' + 'e'.repeat(64)], created: new Date(NOW - 90 * 1000).toISOString(), size: 512 }),
    image({ id: 'sha256:' + '4'.repeat(64), size: 10 }),
  ];
  const rows = imageRows(images, { now: NOW });
  assert.deepEqual(
    rows.map((r) => [r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size]),
    [
      ['reg:5000/old', '<none>', '333333333333', 'About a minute ago', '512B'],
      ['reg:5000/app', 'v2', '222222222222', '3 days ago', '142MB'],
      ['busybox', 'latest', '111111111111', '54 years ago', '1.98MB'],
      ['busybox', '1.36', '111111111111', '54 years ago', '1.98MB'],
      ['<none>', '<none>', '444444444444', 'N/A', '10B'],
    ],
  );
  assert.equal(
    formatRows(rows.slice(1, 3), '', imageTable, imageHeaders),
    [
      'REPOSITORY     TAG       IMAGE ID       CREATED        SIZE',
      'reg:5000/app   v2        222222222222   3 days ago     142MB',
      'busybox        latest    111111111111   54 years ago   1.98MB',
      '',
    ].join('\n'),
  );
  assert.equal(rows[1]!.Digest, 'sha256:' + 'f'.repeat(64));
  assert.equal(imageRows(images, { now: NOW, noTrunc: true })[0]!.ID, 'sha256:' + '3'.repeat(64));
  // A repository (any tag), or a repository and tag.
  assert.deepEqual(
    imageRows(images, { now: NOW, reference: 'busybox' }).map((r) => r.Tag),
    ['latest', '1.36'],
  );
  assert.deepEqual(
    imageRows(images, { now: NOW, reference: 'busybox:1.36' }).map((r) => r.Tag),
    ['1.36'],
  );
  assert.deepEqual(imageRows(images, { now: NOW, reference: 'nothing' }), []);
});

test("image inspect: Docker's keys, the image config as it is, the layers' diff IDs in order", () => {
  const doc = inspectDocument({
    summary: image({ repoTags: ['busybox:latest'], created: '1970-01-01T00:00:00Z', size: 5 }),
    manifestDigest: 'sha256:' + 'm'.repeat(64),
    manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
    configJson: JSON.stringify({ Cmd: ['sh'], User: 'nobody', Env: ['PATH=/bin'] }),
    layers: [
      { digest: 'sha256:l1', mediaType: 'gzip', diffId: 'sha256:d1', size: 3 },
      { digest: 'sha256:l2', mediaType: 'gzip', diffId: 'sha256:d2', size: 2 },
    ],
  });
  assert.deepEqual(Object.keys(doc), ['Id', 'RepoTags', 'RepoDigests', 'Created', 'Config', 'Architecture', 'Os', 'Size', 'RootFS', 'Descriptor', 'Layers']);
  assert.deepEqual(doc.Config, { Cmd: ['sh'], User: 'nobody', Env: ['PATH=/bin'] });
  assert.deepEqual(doc.RootFS, { Type: 'layers', Layers: ['sha256:d1', 'sha256:d2'] });
});

test('pull headers: the default tag is named when none was given; the repository without its registry', () => {
  assert.equal(pullHeader('busybox', 'docker.io/library/busybox:latest'), 'Using default tag: latest\nlatest: Pulling from library/busybox\n');
  assert.equal(pullHeader('reg:5000/shoal/box:v1', 'reg:5000/shoal/box:v1'), 'v1: Pulling from shoal/box\n');
  assert.equal(pullHeader('reg:5000/shoal/box', 'reg:5000/shoal/box:latest'), 'Using default tag: latest\nlatest: Pulling from shoal/box\n');
  const digest = 'sha256:' + 'c'.repeat(64);
  assert.equal(pullHeader(`box@${digest}`, `docker.io/library/box@${digest}`), `${digest}: Pulling from library/box\n`);
  assert.equal(pulledDigest('reg:5000/shoal/box:v1', image({ repoDigests: ['reg:5000/other@sha256:1', 'reg:5000/shoal/box@sha256:2'] })), 'sha256:2');
});

test('pull display on a pipe: a line each time a layer changes state, none for bytes', () => {
  const d = new PullDisplay(false);
  const layer = 'sha256:' + 'ab'.repeat(32);
  const out = [
    d.update({ digest: 'sha256:' + 'cc'.repeat(32), kind: 'config', status: 'downloaded', received: 0, total: 0 }),
    d.update({ digest: layer, kind: 'layer', status: 'downloading', received: 0, total: 1000 }),
    d.update({ digest: layer, kind: 'layer', status: 'downloading', received: 100, total: 1000 }),
    d.update({ digest: layer, kind: 'layer', status: 'downloading', received: 900, total: 1000 }),
    d.update({ digest: layer, kind: 'layer', status: 'downloaded', received: 0, total: 1000 }),
    d.update({ digest: layer, kind: 'layer', status: 'extracting', received: 0, total: 1000 }),
    d.update({ digest: layer, kind: 'layer', status: 'done', received: 0, total: 1000 }),
  ].join('');
  assert.equal(out, 'abababababab: Pulling fs layer\nabababababab: Downloading\nabababababab: Download complete\nabababababab: Extracting\nabababababab: Pull complete\n');
  assert.equal(d.downloaded, true);
  const cached = new PullDisplay(false);
  const again = ['exists', 'extracting', 'done'].map((status) => cached.update({ digest: layer, kind: 'layer', status, received: 0, total: 0 })).join('');
  assert.equal(again, 'abababababab: Already exists\n');
  assert.equal(cached.downloaded, false);
});

test('pull display on a terminal: the block of layer lines is redrawn in place, with a bar while downloading', () => {
  const d = new PullDisplay(true);
  const a = 'sha256:' + 'a'.repeat(64);
  const b = 'sha256:' + 'b'.repeat(64);
  assert.equal(d.update({ digest: a, kind: 'layer', status: 'downloading', received: 0, total: 2000 }), '\x1b[2Kaaaaaaaaaaaa: Pulling fs layer\n');
  assert.equal(
    d.update({ digest: b, kind: 'layer', status: 'exists', received: 0, total: 0 }),
    '\x1b[1A\x1b[2Kaaaaaaaaaaaa: Pulling fs layer\n\x1b[2Kbbbbbbbbbbbb: Already exists\n',
  );
  assert.equal(
    d.update({ digest: a, kind: 'layer', status: 'downloading', received: 1000, total: 2000 }),
    `\x1b[2A\x1b[2Kaaaaaaaaaaaa: Downloading [${'='.repeat(24)}>${' '.repeat(25)}] 1kB/2kB\n\x1b[2Kbbbbbbbbbbbb: Already exists\n`,
  );
  assert.equal(progressBar(2000, 2000), `[${'='.repeat(50)}] 2kB/2kB`);
  assert.equal(progressBar(0, 0), '');
});
