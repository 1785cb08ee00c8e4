// The node's image store. Content-addressed, Docker's model:
//
//   <root>/blobs/sha256/<hex>           manifests, configs and layer blobs, each stored once
//   <root>/layers/<chain-id hex>/diff   a layer unpacked for overlayfs, shared by every image whose
//                                       stack starts with the same layers (chain ID = this layer
//                                       on top of exactly those below it)
//   <root>/images.json                  image records: id (config digest), names, manifest, layers
//   <root>/containers/<id>/             a container's overlay upper/work dirs and rootfs.json
//   <root>/tmp/                         downloads and unpacking in progress (renamed into place)
//
// Images arrive by `load` (OCI layout dir or archive, docker-save archive) or `pull` (registry).
// A container's root filesystem is an overlay mount: the image's layers below, a private upper.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, readdir, rename, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { readTar } from '../../../util/tar.js';
import { applyLayer, detectCompression, layerBytes } from './layer.js';
import { isMountPoint, mountOverlay, unmount } from './mount.js';
import {
  chainIds,
  checkDigest,
  digestHex,
  indexMediaTypes,
  manifestMediaTypes,
  mediaTypes,
  parseJson,
  pickPlatform,
  sha256,
  validateConfig,
  validateManifest,
  type ContainerConfig,
  type Descriptor,
  type ImageConfigFile,
  type ImageIndex,
  type ImageManifest,
} from './oci.js';
import { familiarName, formatReference, isDigest, parseReference, repoName, ReferenceError } from './reference.js';
import { RegistryClient, type RegistryAuth } from './registry.js';

export interface LayerRecord {
  /** Digest of the blob as stored/served (compressed or not). */
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  chainId: string;
}

export interface ImageRecord {
  /** The config digest, as Docker's image ID. */
  id: string;
  manifestDigest: string;
  manifestMediaType: string;
  /** Full references, e.g. `docker.io/library/busybox:latest`. */
  names: string[];
  /** `registry/repository@manifest-digest` for every repository it came from. */
  repoDigests: string[];
  architecture: string;
  os: string;
  created?: string;
  /** Unpacked size of all layers, bytes. */
  size: number;
  config: ContainerConfig;
  layers: LayerRecord[];
}

/** What a pull is doing, for progress bars: one event per blob state change (bytes while downloading). */
export interface PullProgress {
  digest: string;
  kind: 'config' | 'layer';
  status: 'exists' | 'downloading' | 'downloaded' | 'extracting' | 'done';
  received?: number;
  total?: number;
}

export interface PullOptions {
  insecure?: boolean;
  auth?: RegistryAuth;
  /**
   * Progress of this pull. A caller that joins a pull already under way first gets the events it
   * missed (byte counts collapsed to the latest), then the rest as they happen.
   */
  onProgress?: (p: PullProgress) => void;
}

export interface RemoveOptions {
  /** Remove even while containers use the image (their mounts keep working; layers stay until released). */
  force?: boolean;
}

export interface RemoveResult {
  untagged: string[];
  deleted: string[];
}

export interface PreparedRootfs {
  path: string;
  image: ImageRecord;
  upperDir: string;
}

export interface ImageStoreOptions {
  /**
   * Asked before removing an image: true refuses the removal unless forced. The store also knows
   * the containers whose rootfs it prepared; this hook adds what only the caller knows (e.g.
   * containers created but not yet prepared).
   */
  isImageInUse?: (imageId: string) => boolean;
}

export class ImageNotFoundError extends Error {
  constructor(readonly reference: string) {
    super(`No such image: ${reference}`);
    this.name = 'ImageNotFoundError';
  }
}

export class ImageInUseError extends Error {
  constructor(
    readonly reference: string,
    readonly users: string[],
  ) {
    super(`image ${reference} is in use by container${users.length === 1 ? '' : 's'} ${users.join(', ')} (force to remove anyway)`);
    this.name = 'ImageInUseError';
  }
}

interface StoreState {
  images: Record<string, ImageRecord>;
}

interface RootfsRecord {
  containerId: string;
  imageId: string;
  chainIds: string[];
  path: string;
}

const containerIdRe = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Counters of real work done, for metrics and for tests that check sharing. */
export interface ImageStoreStats {
  pulls: number;
  manifestFetches: number;
  blobDownloads: number;
  layerExtractions: number;
  registryRequests: number;
}

export class ImageStore {
  readonly stats: ImageStoreStats = { pulls: 0, manifestFetches: 0, blobDownloads: 0, layerExtractions: 0, registryRequests: 0 };
  private stateLoading: Promise<StoreState> | undefined;
  private lock: Promise<void> = Promise.resolve();
  private readonly pulling = new Map<string, SharedPull>();
  private readonly downloading = new Map<string, Promise<void>>();
  private readonly extracting = new Map<string, Promise<void>>();
  /** Pulls and loads under way: their blobs are not in any record yet, so GC must wait. */
  private importsInFlight = 0;
  /** An import failed (or a removal came) while imports ran: collect once the last one ends. */
  private garbagePending = false;
  private readonly blobsDir: string;
  private readonly layersDir: string;
  private readonly containersDir: string;
  private readonly tmpDir: string;
  private readonly stateFile: string;

  constructor(
    readonly root: string,
    private readonly options: ImageStoreOptions = {},
  ) {
    this.root = resolve(root);
    this.blobsDir = join(this.root, 'blobs', 'sha256');
    this.layersDir = join(this.root, 'layers');
    this.containersDir = join(this.root, 'containers');
    this.tmpDir = join(this.root, 'tmp');
    this.stateFile = join(this.root, 'images.json');
  }

  // ------------------------------------------------------------------------------------------
  // State

  private loadState(): Promise<StoreState> {
    // Memoized as a promise: concurrent first callers share one initialisation (and tmp sweep).
    this.stateLoading ??= this.initState();
    return this.stateLoading;
  }

  private async initState(): Promise<StoreState> {
    for (const d of [this.blobsDir, this.layersDir, this.containersDir, this.tmpDir]) await mkdir(d, { recursive: true });
    let state: StoreState;
    try {
      state = parseJson<StoreState>(await readFile(this.stateFile), this.stateFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      state = { images: {} };
    }
    // A pull or load cut short by a crash left its blobs and layers (and tmp files) behind.
    await this.sweep(state);
    return state;
  }

  /** Runs `fn` with the state, one at a time, and saves it afterwards (atomically). */
  private async mutate<T>(fn: (s: StoreState) => Promise<T> | T): Promise<T> {
    const run = this.lock.then(async () => {
      const s = await this.loadState();
      const result = await fn(s);
      const tmp = `${this.stateFile}.tmp`;
      await writeFile(tmp, JSON.stringify(s, null, 2));
      await rename(tmp, this.stateFile);
      return result;
    });
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private tmpPath(prefix: string): string {
    return join(this.tmpDir, `${prefix}-${randomBytes(6).toString('hex')}`);
  }

  blobPath(digest: string): string {
    return join(this.blobsDir, digestHex(checkDigest(digest, 'blob')));
  }

  layerDir(chainId: string): string {
    return join(this.layersDir, digestHex(checkDigest(chainId, 'layer chain ID')), 'diff');
  }

  // ------------------------------------------------------------------------------------------
  // Queries

  async list(): Promise<ImageRecord[]> {
    const s = await this.loadState();
    return Object.values(s.images).sort((a, b) => (a.names[0] ?? '~' + a.id).localeCompare(b.names[0] ?? '~' + b.id));
  }

  /** Finds an image by name[:tag], name@digest, image ID, manifest digest or an ID prefix. */
  async find(ref: string): Promise<ImageRecord | undefined> {
    const s = await this.loadState();
    const images = Object.values(s.images);
    if (isDigest(ref)) return s.images[ref] ?? images.find((i) => i.manifestDigest === ref);
    if (/^[0-9a-f]{4,64}$/.test(ref)) {
      const hits = images.filter((i) => digestHex(i.id).startsWith(ref));
      if (hits.length === 1) return hits[0];
    }
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch (err) {
      if (err instanceof ReferenceError) return undefined;
      throw err;
    }
    if (parsed.digest) {
      const want = `${repoName(parsed)}@${parsed.digest}`;
      return images.find((i) => i.repoDigests.includes(want));
    }
    const name = formatReference(parsed);
    return images.find((i) => i.names.includes(name));
  }

  async inspect(ref: string): Promise<ImageRecord> {
    const image = await this.find(ref);
    if (!image) throw new ImageNotFoundError(ref);
    return image;
  }

  // ------------------------------------------------------------------------------------------
  // Blobs and layers

  private async hasBlob(digest: string): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Copies a local file into the store if its content hashes to `digest`. */
  private async ingestFile(src: string, digest: string, what: string): Promise<void> {
    checkDigest(digest, what);
    if (await this.hasBlob(digest)) return;
    const tmp = this.tmpPath('blob');
    const hash = createHash('sha256');
    try {
      await copyFile(src, tmp);
      for await (const c of createReadStream(tmp)) hash.update(c as Buffer);
      const got = 'sha256:' + hash.digest('hex');
      if (got !== digest) throw new Error(`${what}: ${src} hashes to ${got}, not ${digest}`);
      await rename(tmp, this.blobPath(digest));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async putBlob(data: Buffer): Promise<string> {
    const digest = sha256(data);
    if (await this.hasBlob(digest)) return digest;
    const tmp = this.tmpPath('blob');
    await writeFile(tmp, data);
    await rename(tmp, this.blobPath(digest));
    return digest;
  }

  /** One download per digest at a time, however many pulls want it. */
  private download(client: RegistryClient, d: Descriptor, report: (status: PullProgress['status'], received?: number) => void): Promise<void> {
    const existing = this.downloading.get(d.digest);
    if (existing) return existing;
    const p = (async () => {
      if (await this.hasBlob(d.digest)) return report('exists');
      this.stats.blobDownloads++;
      const tmp = this.tmpPath('download');
      report('downloading', 0);
      await client.fetchBlob(d.digest, tmp, d.size, (n) => report('downloading', n));
      await rename(tmp, this.blobPath(d.digest));
      report('downloaded', d.size);
    })().finally(() => this.downloading.delete(d.digest));
    this.downloading.set(d.digest, p);
    return p;
  }

  /** Unpacks a layer blob on top of its parent chain, once; checks the result against its diff_id. */
  private ensureLayer(layer: LayerRecord, lowerChain: readonly string[]): Promise<void> {
    const existing = this.extracting.get(layer.chainId);
    if (existing) return existing;
    const p = (async () => {
      const finalDir = join(this.layersDir, digestHex(layer.chainId));
      if (existsSync(join(finalDir, 'layer.json'))) return;
      this.stats.layerExtractions++;
      const work = this.tmpPath('layer');
      try {
        await mkdir(join(work, 'diff'), { recursive: true });
        const lowerDirs = [...lowerChain].reverse().map((c) => this.layerDir(c));
        const applied = await applyLayer(layerBytes(this.blobPath(layer.digest)), join(work, 'diff'), lowerDirs);
        if (applied.diffId !== layer.diffId) throw new Error(`layer ${layer.digest} unpacks to ${applied.diffId}, but the image config says ${layer.diffId}`);
        layer.size = applied.size;
        await writeFile(join(work, 'layer.json'), JSON.stringify({ chainId: layer.chainId, diffId: layer.diffId, parent: lowerChain[lowerChain.length - 1] ?? null, size: applied.size }));
        await rm(finalDir, { recursive: true, force: true });
        await rename(work, finalDir);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    })().finally(() => this.extracting.delete(layer.chainId));
    this.extracting.set(layer.chainId, p);
    return p;
  }

  private async layerSize(chainId: string): Promise<number> {
    try {
      return (JSON.parse(await readFile(join(this.layersDir, digestHex(chainId), 'layer.json'), 'utf8')) as { size: number }).size;
    } catch {
      return 0;
    }
  }

  /**
   * Turns blobs already in the store (manifest, config, layers) into an image: unpacks the layers
   * and records the image under `names`, taking those names from any image that had them.
   */
  private async commitImage(manifestDigest: string, names: string[], repoDigests: string[], progress?: (p: PullProgress) => void): Promise<ImageRecord> {
    const what = `manifest ${manifestDigest}`;
    const manifestData = await readFile(this.blobPath(manifestDigest));
    const manifest = validateManifest(parseJson<ImageManifest>(manifestData, what), what);
    const configDigest = manifest.config.digest;
    const config = validateConfig(parseJson<ImageConfigFile>(await readFile(this.blobPath(configDigest)), `config ${configDigest}`), manifest.layers.length, `config ${configDigest}`);
    const chains = chainIds(config.rootfs.diff_ids);
    const layers: LayerRecord[] = manifest.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: 0,
      diffId: config.rootfs.diff_ids[i] as string,
      chainId: chains[i] as string,
    }));
    // Each layer needs the one below unpacked first (opaque directories look at it).
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i] as LayerRecord;
      progress?.({ digest: layer.digest, kind: 'layer', status: 'extracting' });
      await this.ensureLayer(layer, chains.slice(0, i));
      progress?.({ digest: layer.digest, kind: 'layer', status: 'done' });
    }
    for (const l of layers) l.size = await this.layerSize(l.chainId);
    return this.mutate((s) => {
      const id = configDigest;
      for (const other of Object.values(s.images)) {
        if (other.id !== id) other.names = other.names.filter((n) => !names.includes(n));
      }
      const prev = s.images[id];
      const record: ImageRecord = {
        id,
        manifestDigest,
        manifestMediaType: manifest.mediaType ?? mediaTypes.ociManifest,
        names: [...new Set([...(prev?.names ?? []), ...names])].sort(),
        repoDigests: [...new Set([...(prev?.repoDigests ?? []), ...repoDigests])].sort(),
        architecture: config.architecture,
        os: config.os,
        ...(config.created !== undefined ? { created: config.created } : {}),
        size: layers.reduce((n, l) => n + l.size, 0),
        config: config.config ?? {},
        layers,
      };
      s.images[id] = record;
      return record;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Pull

  /** Pulls `ref` from its registry. Concurrent pulls of the same reference share one operation. */
  pull(ref: string, options: PullOptions = {}): Promise<ImageRecord> {
    const parsed = parseReference(ref);
    const key = formatReference(parsed);
    const existing = this.pulling.get(key);
    if (existing) {
      if (options.onProgress) existing.listen(options.onProgress);
      return existing.done;
    }
    const shared = new SharedPull();
    if (options.onProgress) shared.listen(options.onProgress);
    shared.done = this.importing(() => this.doPull(parsed, { ...options, onProgress: (p) => shared.emit(p) })).finally(() => this.pulling.delete(key));
    this.pulling.set(key, shared);
    return shared.done;
  }

  /**
   * Runs a pull or load. One that fails (a digest mismatch, a registry gone, a connection cut)
   * leaves the blobs and layers it fetched before failing, which no image refers to: they are
   * collected as soon as no other import is under way (one might be about to use them).
   */
  private async importing<T>(fn: () => Promise<T>): Promise<T> {
    this.importsInFlight++;
    try {
      return await fn();
    } catch (err) {
      this.garbagePending = true;
      throw err;
    } finally {
      this.importsInFlight--;
      if (this.importsInFlight === 0 && this.garbagePending) {
        await this.collectGarbage().catch(() => undefined);
      }
    }
  }

  private async doPull(ref: ReturnType<typeof parseReference>, options: PullOptions): Promise<ImageRecord> {
    await this.loadState();
    this.stats.pulls++;
    const client = new RegistryClient(ref.registry, ref.repository, {
      ...(options.insecure !== undefined ? { insecure: options.insecure } : {}),
      ...(options.auth ? { auth: options.auth } : {}),
      onRequest: () => this.stats.registryRequests++,
    });
    const full = formatReference(ref);
    this.stats.manifestFetches++;
    let m = await client.getManifest(ref.digest ?? (ref.tag as string));
    // What the reference resolved to in the registry (the index for multi-arch images): the repo digest.
    const repoDigest = m.digest;
    if (indexMediaTypes.includes(m.mediaType)) {
      const index = parseJson<ImageIndex>(m.data, `index ${full}`);
      const d = pickPlatform(index, `image ${full}`);
      checkDigest(d.digest, `index ${full} entry`);
      this.stats.manifestFetches++;
      m = await client.getManifest(d.digest);
    }
    if (!manifestMediaTypes.includes(m.mediaType)) {
      throw new Error(`image ${full} has manifest type ${m.mediaType}, which is not supported (want one of ${manifestMediaTypes.join(', ')})`);
    }
    const manifest = validateManifest(parseJson<ImageManifest>(m.data, `manifest ${full}`), `manifest ${full}`);
    for (const l of manifest.layers) {
      if (l.mediaType === mediaTypes.ociLayerZstd) throw new Error(`image ${full} has zstd layers, which this node cannot unpack`);
    }
    const progress = options.onProgress;
    const reporter = (d: Descriptor, kind: PullProgress['kind']) => (status: PullProgress['status'], received?: number) =>
      progress?.({ digest: d.digest, kind, status, total: d.size, ...(received !== undefined ? { received } : {}) });
    await this.download(client, manifest.config, reporter(manifest.config, 'config'));
    await Promise.all(manifest.layers.map((l) => this.download(client, l, reporter(l, 'layer'))));
    const manifestDigest = await this.putBlob(m.data);
    // A reference that is only a digest gets no name, as in Docker; tags name the image.
    const names = ref.tag !== undefined && ref.digest === undefined ? [full] : [];
    return this.commitImage(manifestDigest, names, [`${repoName(ref)}@${repoDigest}`], progress);
  }

  // ------------------------------------------------------------------------------------------
  // Load

  /**
   * Loads images from an OCI layout (directory or tar), or a `docker save` archive. `reference`
   * names the image when the archive does not (an OCI layout's ref name is often just a tag; then
   * the repository is the file's name without extension).
   */
  async load(path: string, options: { reference?: string } = {}): Promise<ImageRecord[]> {
    await this.loadState();
    const st = await stat(path).catch(() => {
      throw new Error(`cannot load images from ${path}: no such file or directory`);
    });
    const work = this.tmpPath('load');
    return this.importing(async () => {
      try {
        if (st.isDirectory()) return await this.loadDir(resolve(path), options.reference, basename(resolve(path)));
        await extractArchive(path, work);
        return await this.loadDir(work, options.reference, basename(path).replace(/(\.tar)?(\.gz|\.tgz)?$/, '') || 'image');
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  }

  private async loadDir(dir: string, reference: string | undefined, fallbackRepo: string): Promise<ImageRecord[]> {
    if (existsSync(join(dir, 'index.json'))) return this.loadOciLayout(dir, reference, fallbackRepo);
    if (existsSync(join(dir, 'manifest.json'))) return this.loadDockerArchive(dir, reference);
    throw new Error(`${dir} is neither an OCI image layout (no index.json) nor a docker save archive (no manifest.json)`);
  }

  private async loadOciLayout(dir: string, reference: string | undefined, fallbackRepo: string): Promise<ImageRecord[]> {
    const index = parseJson<ImageIndex>(await readFile(join(dir, 'index.json')), `${dir}/index.json`);
    if (!Array.isArray(index.manifests)) throw new Error(`${dir}/index.json has no manifests list`);
    const layoutBlob = (digest: string): string => join(dir, 'blobs', 'sha256', digestHex(checkDigest(digest, `blob in ${dir}`)));
    const out: ImageRecord[] = [];
    for (const top of index.manifests) {
      let d = top;
      if (indexMediaTypes.includes(d.mediaType)) {
        await this.ingestFile(layoutBlob(d.digest), d.digest, `index in ${dir}`);
        d = pickPlatform(parseJson<ImageIndex>(await readFile(layoutBlob(d.digest)), `index ${d.digest}`), `index ${d.digest} in ${dir}`);
      }
      if (!manifestMediaTypes.includes(d.mediaType)) continue; // attestations, signatures, ...
      await this.ingestFile(layoutBlob(d.digest), d.digest, `manifest in ${dir}`);
      const manifest = validateManifest(parseJson<ImageManifest>(await readFile(layoutBlob(d.digest)), `manifest ${d.digest}`), `manifest ${d.digest} in ${dir}`);
      await this.ingestFile(layoutBlob(manifest.config.digest), manifest.config.digest, `config in ${dir}`);
      for (const l of manifest.layers) await this.ingestFile(layoutBlob(l.digest), l.digest, `layer in ${dir}`);
      const name = reference ?? ociName(top.annotations ?? {}, fallbackRepo);
      const names = name ? [formatReference(parseReference(name))] : [];
      out.push(await this.commitImage(d.digest, names, []));
    }
    if (out.length === 0) throw new Error(`${dir}/index.json lists no image manifest`);
    return out;
  }

  private async loadDockerArchive(dir: string, reference: string | undefined): Promise<ImageRecord[]> {
    const entries = parseJson<Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>>(await readFile(join(dir, 'manifest.json')), 'manifest.json');
    if (!Array.isArray(entries) || entries.length === 0) throw new Error('manifest.json of the docker archive lists no image');
    const inside = (p: string): string => {
      const full = resolve(dir, p);
      if (!full.startsWith(dir + sep)) throw new Error(`docker archive path ${JSON.stringify(p)} points outside the archive`);
      return full;
    };
    const out: ImageRecord[] = [];
    for (const e of entries) {
      const configData = await readFile(inside(e.Config));
      const configDigest = await this.putBlob(configData);
      const layers: Descriptor[] = [];
      for (const l of e.Layers) {
        const file = inside(l);
        const digest = await hashFile(file);
        await this.ingestFile(file, digest, `layer ${l}`);
        const compression = await detectCompression(file);
        layers.push({ mediaType: compression === 'gzip' ? mediaTypes.ociLayerGzip : mediaTypes.ociLayer, digest, size: (await stat(file)).size });
      }
      // docker save has no manifest: write the OCI one it implies.
      const manifest = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { mediaType: mediaTypes.ociConfig, digest: configDigest, size: configData.length }, layers }),
      );
      const manifestDigest = await this.putBlob(manifest);
      const tags = reference ? [reference] : (e.RepoTags ?? []);
      out.push(await this.commitImage(manifestDigest, tags.map((t) => formatReference(parseReference(t))), []));
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Remove

  private async rootfsRecords(): Promise<RootfsRecord[]> {
    const out: RootfsRecord[] = [];
    for (const id of await readdir(this.containersDir).catch(() => [] as string[])) {
      try {
        out.push(JSON.parse(await readFile(join(this.containersDir, id, 'rootfs.json'), 'utf8')) as RootfsRecord);
      } catch {
        // half-prepared: releaseRootfs cleans it
      }
    }
    return out;
  }

  /**
   * Removes a name from an image (`busybox:latest`), or an image by ID (all its names). The image
   * itself goes when no name is left; then layers and blobs no other image uses are deleted.
   */
  async remove(ref: string, options: RemoveOptions = {}): Promise<RemoveResult> {
    const image = await this.inspect(ref);
    // By ID (or manifest digest) removes every name; by name only that one.
    const byName = !isDigest(ref) && !(/^[0-9a-f]{4,64}$/.test(ref) && digestHex(image.id).startsWith(ref));
    const fullName = byName ? formatReference(parseReference(ref)) : undefined;
    const users = (await this.rootfsRecords()).filter((r) => r.imageId === image.id).map((r) => r.containerId);
    const lastName = !byName || image.names.length <= 1;
    if (lastName && !options.force && (users.length > 0 || this.options.isImageInUse?.(image.id))) {
      throw new ImageInUseError(ref, users.length ? users : ['(reported by the runtime)']);
    }
    const result = await this.mutate((s) => {
      const rec = s.images[image.id];
      if (!rec) return { untagged: [], deleted: [] } as RemoveResult;
      const untagged = byName ? rec.names.filter((n) => n === fullName) : [...rec.names];
      rec.names = rec.names.filter((n) => !untagged.includes(n));
      if (byName && rec.names.length > 0) return { untagged: untagged.map(familiarName), deleted: [] };
      delete s.images[image.id];
      return { untagged: untagged.map(familiarName), deleted: [image.id] };
    });
    if (result.deleted.length > 0) await this.collectGarbage();
    return result;
  }

  /** Deletes layers and blobs that no image and no prepared rootfs refer to. */
  private async collectGarbage(): Promise<void> {
    // An import's blobs belong to no record until it commits: the last import to end collects.
    if (this.importsInFlight > 0) {
      this.garbagePending = true;
      return;
    }
    await this.mutate((s) => this.sweep(s));
  }

  /** The garbage collection itself; only while no import runs (their blobs and tmp files look unused). */
  private async sweep(s: StoreState): Promise<void> {
    this.garbagePending = false;
    const keepChains = new Set<string>();
    const keepBlobs = new Set<string>();
    for (const img of Object.values(s.images)) {
      keepBlobs.add(img.manifestDigest);
      keepBlobs.add(img.id);
      for (const l of img.layers) {
        keepChains.add(digestHex(l.chainId));
        keepBlobs.add(l.digest);
      }
    }
    for (const r of await this.rootfsRecords()) for (const c of r.chainIds) keepChains.add(digestHex(c));
    for (const name of await readdir(this.layersDir)) {
      if (!keepChains.has(name) && !this.extracting.has(`sha256:${name}`)) await rm(join(this.layersDir, name), { recursive: true, force: true });
    }
    const keepHex = new Set([...keepBlobs].map(digestHex));
    for (const name of await readdir(this.blobsDir)) {
      if (!keepHex.has(name) && !this.downloading.has(`sha256:${name}`)) await rm(join(this.blobsDir, name), { force: true });
    }
    for (const name of await readdir(this.tmpDir)) await rm(join(this.tmpDir, name), { recursive: true, force: true });
  }

  // ------------------------------------------------------------------------------------------
  // Container root filesystems

  /**
   * Mounts an overlay of the image's layers at `target` (created if missing) with a writable
   * upper layer private to the container. Calling it again for a mounted container is a no-op.
   */
  async prepareRootfs(imageRef: string, containerId: string, target: string): Promise<PreparedRootfs> {
    if (!containerIdRe.test(containerId)) throw new Error(`invalid container ID ${JSON.stringify(containerId)}: letters, digits, '_', '.', '-' (at most 128)`);
    const image = await this.inspect(imageRef);
    const path = resolve(target);
    const cdir = join(this.containersDir, containerId);
    const upperDir = join(cdir, 'upper');
    const workDir = join(cdir, 'work');
    const recordFile = join(cdir, 'rootfs.json');
    const prev = await readFile(recordFile, 'utf8').then((t) => JSON.parse(t) as RootfsRecord, () => undefined);
    if (prev) {
      if (prev.path !== path || prev.imageId !== image.id) throw new Error(`container ${containerId} already has a rootfs at ${prev.path} (image ${prev.imageId}); release it first`);
      if (await isMountPoint(path)) return { path, image, upperDir };
    }
    if (image.layers.length === 0) throw new Error(`image ${imageRef} has no layers: nothing to mount`);
    for (const l of image.layers) {
      if (!existsSync(join(this.layersDir, digestHex(l.chainId), 'layer.json'))) throw new Error(`image ${imageRef} is missing layer ${l.chainId} in ${this.layersDir}: pull or load it again`);
    }
    await mkdir(upperDir, { recursive: true });
    await mkdir(workDir, { recursive: true });
    await mkdir(path, { recursive: true });
    // Recorded before mounting, so a crash in between still leaves something releaseRootfs finds.
    const record: RootfsRecord = { containerId, imageId: image.id, chainIds: image.layers.map((l) => l.chainId), path };
    await writeFile(recordFile, JSON.stringify(record));
    try {
      await mountOverlay(path, {
        lowerDirs: [...image.layers].reverse().map((l) => this.layerDir(l.chainId)),
        upperDir,
        workDir,
        lowerBase: this.layersDir,
      });
    } catch (err) {
      await rm(cdir, { recursive: true, force: true });
      await rmdir(path).catch(() => undefined);
      throw err;
    }
    return { path, image, upperDir };
  }

  /** Unmounts a container's rootfs and deletes its upper layer and the (now empty) mount point. */
  async releaseRootfs(containerId: string): Promise<void> {
    if (!containerIdRe.test(containerId)) throw new Error(`invalid container ID ${JSON.stringify(containerId)}`);
    await this.loadState();
    const cdir = join(this.containersDir, containerId);
    const record = await readFile(join(cdir, 'rootfs.json'), 'utf8').then((t) => JSON.parse(t) as RootfsRecord, () => undefined);
    if (record) {
      await unmount(record.path);
      await rmdir(record.path).catch(() => undefined); // only if empty: never delete what is not ours
    }
    await rm(cdir, { recursive: true, force: true });
  }

  /** Containers whose rootfs this store has prepared (and not released). */
  async preparedRootfs(): Promise<Array<{ containerId: string; imageId: string; path: string }>> {
    await this.loadState();
    return (await this.rootfsRecords()).map(({ containerId, imageId, path }) => ({ containerId, imageId, path }));
  }
}

/** The name an OCI layout gives its image: containerd's full-name annotation, else repo:tag. */
function ociName(annotations: Record<string, string>, fallbackRepo: string): string | undefined {
  const full = annotations['io.containerd.image.name'];
  if (full) return full;
  const refName = annotations['org.opencontainers.image.ref.name'];
  if (!refName) return undefined;
  // A ref name is usually a bare tag; some tools write a whole reference.
  if (/^[\w][\w.-]{0,127}$/.test(refName)) return `${fallbackRepo.toLowerCase()}:${refName}`;
  return refName;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path)) hash.update(c as Buffer);
  return 'sha256:' + hash.digest('hex');
}

/** Unpacks an image archive (plain files, maybe gzip-compressed) into `dest`. */
async function extractArchive(file: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  for await (const e of readTar(layerBytes(file))) {
    const name = e.header.name;
    if (name === '') continue;
    const path = resolve(dest, name);
    if (!path.startsWith(dest + sep) || name.split('/').includes('..')) throw new Error(`archive ${file} entry ${JSON.stringify(name)} points outside the archive`);
    await mkdir(e.header.type === 'dir' ? path : dirname(path), { recursive: true });
    if (e.header.type === 'file') await pipeline(e.body, createWriteStream(path));
    else if (e.header.type === 'symlink') {
      // Old docker save archives link duplicate layer.tar files to one another.
      const target = resolve(dirname(path), e.header.linkname);
      if (target.startsWith(dest + sep)) await symlink(e.header.linkname, path);
    } else if (e.header.type === 'hardlink') {
      const target = resolve(dest, e.header.linkname);
      if (target.startsWith(dest + sep) && (await lstat(target).catch(() => undefined))) await copyFile(target, path);
    }
  }
}

/**
 * One pull shared by every caller asking for the same reference: progress goes to all of them,
 * and a late caller is first told what it missed, so its display matches a pull of its own.
 */
class SharedPull {
  done!: Promise<ImageRecord>;
  private readonly listeners: Array<(p: PullProgress) => void> = [];
  private readonly seen: PullProgress[] = [];
  /** Where in `seen` each blob's latest byte count sits, while it is still downloading. */
  private readonly byteEvent = new Map<string, number>();

  listen(fn: (p: PullProgress) => void): void {
    for (const p of this.seen) fn(p);
    this.listeners.push(fn);
  }

  emit(p: PullProgress): void {
    // Byte counts only matter as the latest one: a late caller needs no replay of each chunk.
    const at = this.byteEvent.get(p.digest);
    if (p.status === 'downloading' && p.received !== undefined && at !== undefined) this.seen[at] = p;
    else {
      if (p.status === 'downloading' && p.received !== undefined) this.byteEvent.set(p.digest, this.seen.length);
      else this.byteEvent.delete(p.digest);
      this.seen.push(p);
    }
    for (const fn of this.listeners) fn(p);
  }
}
