// The lab's registry host: up with --registry starts Debian's docker-registry on the reserved
// address, holding the test image; a lab host pulls it over the underlay with the agent's own image
// store (the same code path a worker takes); down leaves nothing of the registry behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../../deploy/labkit/lab.js';
import { testImageLayout, testImageReference } from '../../deploy/labkit/registry.js';
import { repo, testLabName } from './labkit/helpers.js';

test('a lab host pulls the test image from the lab registry; down removes the registry', async (t) => {
  const lab = new Lab(testLabName('reg'));
  t.after(async () => {
    await lab.down();
  });
  const { layout } = await lab.up({ hosts: 1, registry: true });
  assert.equal(layout.registry?.address, layout.reserved.registry);
  const store = join(layout.hosts[0]!.dataDir, 'pull-test');
  const script = [
    `const { ImageStore } = await import(${JSON.stringify(`${repo}dist/agent/runtime/image/store.js`)});`,
    `const img = await new ImageStore(${JSON.stringify(store)}).pull(${JSON.stringify(testImageReference(layout))}, { insecure: true });`,
    'console.log(img.id);',
  ].join('\n');
  const r = await lab.exec('h1', ['node', '--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  // The image id is its config's digest: the one the OCI layout we pushed names.
  const layoutDir = testImageLayout();
  const index = JSON.parse(readFileSync(join(layoutDir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(layoutDir, 'blobs', ...index.manifests[0]!.digest.split(':')), 'utf8')) as { config: { digest: string } };
  assert.equal(r.stdout.trim(), manifest.config.digest);

  await lab.down();
  assert.equal(existsSync(layout.registry!.netnsPath), false);
});
