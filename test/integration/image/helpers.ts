// Shared by the image store's integration tests: temp dirs, the test image, OCI layouts made on
// the spot, and a real docker-registry (Debian's distribution 2.x) on a free loopback port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from '../../../agent/runtime/image/oci.js';
import { packTar, type TarWriteEntry } from '../../../util/tar.js';

export interface After {
  after: (fn: () => void | Promise<void>) => void;
}

/**
 * A temp dir removed when the test ends. Anything still mounted under it is detached first:
 * a recursive delete must never walk into a mounted rootfs.
 */
export function tempDir(t: After, prefix = 'shoal-img-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => {
    for (const m of mounts().filter((p) => p.startsWith(dir + '/')).sort().reverse()) execFileSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Mount points now, from the kernel's own table. */
export function mounts(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[1] ?? '');
}

export interface LayoutImage {
  layers: TarWriteEntry[][];
  architecture?: string;
  cmd?: string[];
}

/**
 * Writes an OCI layout of one or more images. With several, index.json points at a nested image
 * index whose entries carry platforms (the shape of a multi-arch image).
 */
export function writeLayout(dir: string, images: LayoutImage[], tag = 'latest'): { manifestDigests: string[]; topDigest: string } {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const digest = sha256(data);
    writeFileSync(join(blobs, digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const manifests = images.map((img) => {
    const tars = img.layers.map((entries) => packTar(entries));
    const layerDescs = tars.map((t) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gzipSync(t)) }));
    const arch = img.architecture ?? 'amd64';
    const config = put(
      Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: img.cmd ?? ['sh'] }, rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) } })),
    );
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: layerDescs }),
    );
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...put(manifest), platform: { architecture: arch, os: 'linux' } };
  });
  let top;
  if (manifests.length === 1) {
    const { platform: _p, ...d } = manifests[0] as (typeof manifests)[number];
    top = d;
  } else {
    const nested = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })));
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...nested };
  }
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { manifestDigests: manifests.map((m) => m.digest), topDigest: top.digest };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

export interface Registry {
  /** host:port */
  host: string;
  process: ChildProcess;
}

export interface RegistryConfig {
  /** Basic auth from an htpasswd file (bcrypt through perl's crypt(3), as registry wants). */
  basicAuth?: { username: string; password: string };
  /** Extra YAML appended at the top level (e.g. an `auth: token:` section). */
  extraYaml?: string[];
}

/** A bcrypt htpasswd line; libxcrypt's crypt(3) does bcrypt and perl is in every Debian. */
function htpasswdLine(username: string, password: string): string {
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], q($2y$05$) . $ARGV[1])', password, 'shoaltestsaltshoaltest'], { encoding: 'utf8' });
  if (!hash.startsWith('$2y$')) throw new Error(`crypt(3) here does not do bcrypt: ${hash}`);
  return `${username}:${hash}\n`;
}

/** Starts docker-registry on 127.0.0.1 with its own storage; killed by pid when the test ends. */
export async function startRegistry(t: After, options: RegistryConfig = {}): Promise<Registry> {
  const dir = tempDir(t, 'shoal-registry-');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const auth: string[] = [];
  if (options.basicAuth) {
    writeFileSync(join(dir, 'htpasswd'), htpasswdLine(options.basicAuth.username, options.basicAuth.password));
    auth.push('auth:', '  htpasswd:', '    realm: shoal-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...auth,
      ...(options.extraYaml ?? []),
      '',
    ].join('\n'),
  );
  let stderr = '';
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  });
  // Ready when /v2/ answers; give up (with its log) if it exits or takes more than 20 s.
  const deadline = Date.now() + 20_000;
  // 401 is an answer too: the registry is up and wants credentials.
  while (![200, 401].includes(await getStatus(`http://127.0.0.1:${port}/v2/`))) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`docker-registry did not come up on port ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host: `127.0.0.1:${port}`, process: child };
}
