// The lab's registry host: Debian's `docker-registry` (the Distribution v2 registry) in a namespace
// of its own on the underlay, at the address the layout keeps for it, holding the test image. Every
// lab host pulls from it the way a real cluster pulls from a private registry: over the network,
// with the registry named in the image reference (`198.18.0.254:5000/shoal/busybox`). It speaks
// plain HTTP, so lab daemons start with `--insecure-registry` for it.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../util/command.js';
import type { LabLayout } from './layout.js';
import { run } from './run.js';

export const REGISTRY_PORT = 5000;
/** The repository the test image is pushed to. */
export const TEST_IMAGE_REPOSITORY = 'shoal/busybox';

export interface RegistryLayout {
  netns: string;
  netnsPath: string;
  address: string;
  cidr: string;
  mac: string;
  underlayPort: string;
  runDir: string;
  dataDir: string;
}

/** `ADDR:5000`, what daemons trust with --insecure-registry. */
export function registryHost(layout: LabLayout): string {
  if (!layout.registry) throw new UserError(`lab "${layout.name}" has no registry host (bring it up with --registry)`);
  return `${layout.registry.address}:${REGISTRY_PORT}`;
}

/** The test image's reference in the lab registry. */
export function testImageReference(layout: LabLayout): string {
  return `${registryHost(layout)}/${TEST_IMAGE_REPOSITORY}:latest`;
}

/** The test image built by `npm run build:image` (an OCI layout). */
export function testImageLayout(): string {
  const dir = fileURLToPath(new URL('../../images/busybox', import.meta.url));
  if (!existsSync(join(dir, 'index.json'))) throw new UserError(`the test image is not built (${dir}): run npm run build:image`);
  return dir;
}

function config(reg: RegistryLayout): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${reg.dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${reg.address}:${REGISTRY_PORT}`,
    '',
  ].join('\n');
}

/** Starts the registry in its namespace (already wired to the underlay) and pushes the test image. */
export async function startRegistry(layout: LabLayout, log: (line: string) => void): Promise<void> {
  const reg = layout.registry!;
  mkdirSync(reg.runDir, { recursive: true });
  mkdirSync(reg.dataDir, { recursive: true });
  const configFile = join(reg.runDir, 'config.yml');
  writeFileSync(configFile, config(reg));
  const out = openSync(join(reg.runDir, 'registry.log'), 'a');
  // Detached: it outlives `lab up`; `lab down` kills every process in the lab's namespaces.
  const child = spawn('nsenter', [`--net=${reg.netnsPath}`, '--', 'docker-registry', 'serve', configFile], { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  const image = testImageLayout();
  const dest = `docker://${registryHost(layout)}/${TEST_IMAGE_REPOSITORY}:latest`;
  // The push doubles as the readiness check: it fails with "connection refused" until the registry listens.
  for (let attempt = 1; ; attempt++) {
    try {
      await run(['nsenter', `--net=${reg.netnsPath}`, '--', 'skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${image}:latest`, dest]);
      break;
    } catch (e) {
      if (attempt >= 50) throw new UserError(`could not push the test image to the lab registry: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  log(`registry: ${registryHost(layout)} holds ${TEST_IMAGE_REPOSITORY}:latest`);
}
