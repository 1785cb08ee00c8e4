// Builds shoal's test image, `busybox:latest`, as an OCI image layout from the machine's own
// Debian busybox-static binary: no registry, no network, no Docker. The build is reproducible:
// every timestamp is the epoch, owners are numeric root, entries are sorted and gzip gets a fixed
// header, so two builds from the same binary give the same manifest digest.
//
//   node dist/deploy/image/build.js [--out DIR] [--busybox PATH] [--docker-archive FILE]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync, constants as zlibConstants } from 'node:zlib';
import { packTar, type TarWriteEntry } from '../../util/tar.js';
import { parseFlags, UsageError, type FlagSpec } from '../../util/flags.js';

export const mediaTypes = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** A fixed creation time: the clock must never leak into the image. */
export const imageCreated = '1970-01-01T00:00:00Z';
export const imagePath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface BuildOptions {
  /** OCI layout directory to write (its oci-layout, index.json and blobs/ are replaced). */
  outDir: string;
  /** The static busybox binary to ship; default /bin/busybox. */
  busybox?: string;
  /** Also write a `docker save`-style archive here (manifest.json, config, uncompressed layer). */
  dockerArchive?: string;
  /** Repository:tag recorded in the docker archive; the OCI layout's ref name is the tag part. */
  reference?: string;
}

export interface BuiltImage {
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  layerDigest: string;
  diffId: string;
  applets: string[];
}

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** The applets this busybox provides, as `busybox --list` names them. */
export function listApplets(busybox: string): string[] {
  const out = execFileSync(busybox, ['--list'], { encoding: 'utf8' });
  const names = out.split('\n').map((s) => s.trim()).filter((s) => s !== '' && s !== 'busybox' && !s.includes('/'));
  return [...new Set(names)].sort();
}

function goArch(arch: string): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const a = map[arch];
  if (!a) throw new Error(`no OCI architecture name for node's process.arch ${JSON.stringify(arch)}`);
  return a;
}

/** The root filesystem: busybox, a symlink per applet, and the few files a shell and httpd want. */
export function rootfsEntries(busyboxBinary: Buffer, applets: readonly string[]): TarWriteEntry[] {
  const dir = (name: string, mode = 0o755): TarWriteEntry => ({ name, type: 'dir', mode });
  const file = (name: string, text: string, mode = 0o644): TarWriteEntry => ({ name, type: 'file', mode, data: Buffer.from(text) });
  return [
    dir('bin'),
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: busyboxBinary },
    ...applets.map((a): TarWriteEntry => ({ name: `bin/${a}`, type: 'symlink', mode: 0o777, linkname: 'busybox' })),
    // Mount points the runtime fills in; empty in the image.
    dir('dev'),
    dir('proc'),
    dir('sys'),
    dir('etc'),
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'),
    file('etc/group', 'root:x:0:\nnobody:x:65534:\n'),
    dir('root', 0o700),
    dir('tmp', 0o1777),
    dir('var'),
    dir('var/www'),
  ];
}

function canonicalJson(value: unknown): Buffer {
  // Key order is the insertion order of the literals below, which is fixed: the bytes are stable.
  return Buffer.from(JSON.stringify(value));
}

export function buildTestImage(options: BuildOptions): BuiltImage {
  const busyboxPath = options.busybox ?? '/bin/busybox';
  const reference = options.reference ?? 'busybox:latest';
  const tag = reference.includes(':') ? reference.slice(reference.lastIndexOf(':') + 1) : 'latest';
  let binary: Buffer;
  try {
    binary = readFileSync(busyboxPath);
  } catch (err) {
    throw new Error(`cannot read busybox binary ${busyboxPath}: ${(err as Error).message} (install busybox-static)`);
  }
  const applets = listApplets(busyboxPath);
  if (!applets.includes('sh')) throw new Error(`${busyboxPath} --list has no 'sh' applet: is it busybox?`);

  const layerTar = packTar(rootfsEntries(binary, applets));
  // Node's gzip writes mtime 0 and no file name into the header, so only the bytes matter.
  const layerGz = gzipSync(layerTar, { level: zlibConstants.Z_BEST_COMPRESSION });
  const diffId = sha256(layerTar);
  const layerDigest = sha256(layerGz);

  const config = canonicalJson({
    created: imageCreated,
    architecture: goArch(process.arch),
    os: 'linux',
    config: { Env: [`PATH=${imagePath}`], Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: imageCreated, created_by: 'shoal deploy/image/build.ts: busybox-static with applet symlinks' }],
  });
  const configDigest = sha256(config);
  const manifest = canonicalJson({
    schemaVersion: 2,
    mediaType: mediaTypes.manifest,
    config: { mediaType: mediaTypes.config, digest: configDigest, size: config.length },
    layers: [{ mediaType: mediaTypes.layerGzip, digest: layerDigest, size: layerGz.length }],
  });
  const manifestDigest = sha256(manifest);
  const index = canonicalJson({
    schemaVersion: 2,
    mediaType: mediaTypes.index,
    manifests: [
      {
        mediaType: mediaTypes.manifest,
        digest: manifestDigest,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      },
    ],
  });

  const out = resolve(options.outDir);
  mkdirSync(out, { recursive: true });
  for (const name of ['oci-layout', 'index.json', 'blobs']) rmSync(join(out, name), { recursive: true, force: true });
  const blobs = join(out, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  for (const [digest, data] of [
    [layerDigest, layerGz],
    [configDigest, config],
    [manifestDigest, manifest],
  ] as const) {
    writeFileSync(join(blobs, hex(digest)), data);
  }
  writeFileSync(join(out, 'oci-layout'), canonicalJson({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(out, 'index.json'), index);

  if (options.dockerArchive) {
    const dockerManifest = canonicalJson([{ Config: `${hex(configDigest)}.json`, RepoTags: [reference], Layers: [`${hex(diffId)}/layer.tar`] }]);
    const archive = packTar([
      { name: 'manifest.json', type: 'file', data: dockerManifest },
      { name: `${hex(configDigest)}.json`, type: 'file', data: config },
      { name: hex(diffId), type: 'dir' },
      { name: `${hex(diffId)}/layer.tar`, type: 'file', data: layerTar },
    ]);
    mkdirSync(dirname(resolve(options.dockerArchive)), { recursive: true });
    writeFileSync(options.dockerArchive, archive);
  }
  return { manifestDigest, manifestSize: manifest.length, configDigest, layerDigest, diffId, applets };
}

/** `<repo>/dist/images/busybox`, found from this file's place in dist/. */
export function defaultOutDir(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // <repo>/dist/deploy/image
  return resolve(here, '..', '..', 'images', 'busybox');
}

const flagSpecs: FlagSpec[] = [
  { name: 'out', kind: 'string', description: 'OCI layout directory to write', valueName: 'DIR' },
  { name: 'busybox', kind: 'string', description: 'Static busybox binary', default: '/bin/busybox', valueName: 'PATH' },
  { name: 'docker-archive', kind: 'string', description: 'Also write a docker-save style archive', valueName: 'FILE' },
  { name: 'reference', kind: 'string', description: 'Image name:tag', default: 'busybox:latest', valueName: 'REF' },
];

export function main(argv: string[]): number {
  try {
    const { flags, args } = parseFlags(argv, flagSpecs);
    if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
    const outDir = typeof flags.out === 'string' ? flags.out : defaultOutDir();
    const built = buildTestImage({
      outDir,
      busybox: String(flags.busybox),
      reference: String(flags.reference),
      ...(typeof flags['docker-archive'] === 'string' ? { dockerArchive: flags['docker-archive'] } : {}),
    });
    process.stdout.write(`${outDir} ${built.manifestDigest} (${built.applets.length} applets)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`build-image: ${(err as Error).message}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2));

