// The JSON documents of images (OCI image spec and Docker's schema 2, which share a shape) and
// the digest helpers everything content-addressed needs.
import { createHash } from 'node:crypto';

export const mediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export const indexMediaTypes: readonly string[] = [mediaTypes.ociIndex, mediaTypes.dockerList];
export const manifestMediaTypes: readonly string[] = [mediaTypes.ociManifest, mediaTypes.dockerManifest];

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The container defaults of an image config (Docker's names, which OCI kept). */
export interface ContainerConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  Labels?: Record<string, string> | null;
}

export interface ImageConfigFile {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: unknown[];
}

const digestRe = /^sha256:[0-9a-f]{64}$/;

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Refuses anything but a well-formed sha256 digest: digests become file names. */
export function checkDigest(digest: unknown, what: string): string {
  if (typeof digest !== 'string' || !digestRe.test(digest)) {
    throw new Error(`${what}: ${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 hex digits>)`);
  }
  return digest;
}

export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/**
 * The chain IDs of a layer stack: the identity of "this layer on top of exactly these", which is
 * what an extracted layer directory is (whiteouts depend on what lies below).
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256(`${prev} ${d}`));
  }
  return out;
}

/** The OCI/Go name of the machine's architecture. */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

export function parseJson<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Checks the fields the store relies on, so a bad manifest fails here with its name. */
export function validateManifest(m: ImageManifest, what: string): ImageManifest {
  if (m.schemaVersion !== 2) throw new Error(`${what}: schemaVersion ${JSON.stringify(m.schemaVersion)} is not supported (want 2)`);
  if (!m.config || !Array.isArray(m.layers)) throw new Error(`${what}: no config or layers: not an image manifest`);
  checkDigest(m.config.digest, `${what} config digest`);
  for (const l of m.layers) checkDigest(l.digest, `${what} layer digest`);
  return m;
}

export function validateConfig(c: ImageConfigFile, layerCount: number, what: string): ImageConfigFile {
  if (!c.rootfs || !Array.isArray(c.rootfs.diff_ids)) throw new Error(`${what}: no rootfs.diff_ids`);
  if (c.rootfs.diff_ids.length !== layerCount) {
    throw new Error(`${what}: ${c.rootfs.diff_ids.length} diff_ids for ${layerCount} layers`);
  }
  for (const d of c.rootfs.diff_ids) checkDigest(d, `${what} diff_id`);
  return c;
}

/** From an index, the manifest for this machine (linux/<host arch>), or an error listing what exists. */
export function pickPlatform(index: ImageIndex, what: string, want: Platform = { os: 'linux', architecture: hostArchitecture() }): Descriptor {
  const candidates = index.manifests.filter((d) => manifestMediaTypes.includes(d.mediaType) || indexMediaTypes.includes(d.mediaType));
  const match = candidates.find((d) => d.platform?.os === want.os && d.platform.architecture === want.architecture);
  if (match) return match;
  // An index without platforms (a plain OCI layout) holding one image: that image.
  const unlabelled = candidates.filter((d) => !d.platform);
  if (unlabelled.length === 1 && candidates.length === 1) return unlabelled[0] as Descriptor;
  const have = candidates.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : 'unknown')).join(', ');
  throw new Error(`${what} has no image for ${want.os}/${want.architecture} (it has: ${have || 'nothing'})`);
}
