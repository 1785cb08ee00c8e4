// Unpacks one image layer (a tar, maybe gzip-compressed) into a directory that overlayfs can use
// as a lower layer. OCI whiteouts become overlayfs ones: `.wh.NAME` turns into a 0:0 character
// device, and an opaque directory (`.wh..wh..opq`) hides the layers below by a whiteout for every
// name they hold there (overlay's own opaque marker is an xattr, which node cannot set; this way
// needs none, at the price that the result depends on the layers below: hence chain IDs).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { normalizeTarPath, readTar, type TarHeader } from '../../../util/tar.js';

const execFileP = promisify(execFile);
const whiteoutPrefix = '.wh.';
const opaqueMarker = '.wh..wh..opq';

export interface AppliedLayer {
  /** sha256 of the uncompressed tar: the layer's diff_id. */
  diffId: string;
  /** Bytes of regular-file content unpacked. */
  size: number;
  entries: number;
}

export class LayerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerError';
  }
}

/** What compression a blob uses, from its first bytes (media types lie more often than magic). */
export async function detectCompression(path: string): Promise<'gzip' | 'zstd' | 'none'> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

/** The uncompressed bytes of a layer blob file. */
export async function* layerBytes(path: string): AsyncGenerator<Buffer> {
  const compression = await detectCompression(path);
  if (compression === 'zstd') throw new LayerError(`layer ${path} is zstd-compressed, which this node cannot decompress (use gzip layers)`);
  const file = createReadStream(path);
  if (compression === 'none') {
    for await (const c of file) yield c as Buffer;
    return;
  }
  const gunzip = createGunzip();
  file.on('error', (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  try {
    for await (const c of gunzip) yield c as Buffer;
  } finally {
    file.destroy();
  }
}

function mknod(path: string, kind: 'c' | 'b' | 'p', major = 0, minor = 0): Promise<unknown> {
  const args = kind === 'p' ? ['-m', '0', path, 'p'] : ['-m', '0', path, kind, String(major), String(minor)];
  return execFileP('mknod', args);
}

async function lstatOrUndefined(path: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Unpacks into `dest`, an empty directory; `lowerDirs` are the extracted layers below, top first. */
export async function applyLayer(source: AsyncIterable<Buffer>, dest: string, lowerDirs: readonly string[]): Promise<AppliedLayer> {
  const hash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const c of source) {
      hash.update(c);
      yield c;
    }
  }
  const bytes = hashed();
  const safeDirs = new Set<string>(['']);
  const dirMeta: Array<{ path: string; h: TarHeader }> = [];
  const opaque: string[] = [];
  let size = 0;
  let entries = 0;

  /** Makes sure every parent of `rel` is a real directory of this layer (never a symlink out). */
  const ensureParents = async (rel: string, entryName: string): Promise<void> => {
    const parts = rel.split('/');
    parts.pop();
    let cur = '';
    for (const p of parts) {
      cur = cur ? `${cur}/${p}` : p;
      if (safeDirs.has(cur)) continue;
      const st = await lstatOrUndefined(join(dest, cur));
      if (!st) await mkdir(join(dest, cur), { mode: 0o755 });
      else if (!st.isDirectory()) throw new LayerError(`layer entry ${JSON.stringify(entryName)} lies under ${JSON.stringify(cur)}, which is not a directory in this layer`);
      safeDirs.add(cur);
    }
  };
  const clear = async (path: string): Promise<void> => {
    if (await lstatOrUndefined(path)) await rm(path, { recursive: true, force: true });
  };
  const setMeta = async (path: string, h: TarHeader): Promise<void> => {
    await lchown(path, h.uid, h.gid);
    if (h.type !== 'symlink') await chmod(path, h.mode); // after chown, which clears setuid bits
    await lutimes(path, h.mtime, h.mtime);
  };

  for await (const entry of readTar(bytes)) {
    const h = entry.header;
    const rel = h.name;
    if (rel === '') continue; // the layer root itself
    if (rel.split('/').includes('..')) throw new LayerError(`layer entry ${JSON.stringify(rel)} climbs out of the layer with '..'`);
    entries++;
    await ensureParents(rel, rel);
    const path = join(dest, rel);
    const slash = rel.lastIndexOf('/');
    const base = rel.slice(slash + 1);
    const parentRel = slash === -1 ? '' : rel.slice(0, slash);
    if (base === opaqueMarker) {
      opaque.push(parentRel);
      continue;
    }
    if (base.startsWith(whiteoutPrefix)) {
      if (base.startsWith(`${whiteoutPrefix}${whiteoutPrefix}`)) continue; // aufs metadata (.wh..wh.plnk etc.)
      const hidden = join(dest, parentRel, base.slice(whiteoutPrefix.length));
      await clear(hidden);
      await mknod(hidden, 'c', 0, 0);
      continue;
    }
    switch (h.type) {
      case 'dir': {
        const st = await lstatOrUndefined(path);
        if (st && !st.isDirectory()) await rm(path, { force: true });
        if (!st || !st.isDirectory()) await mkdir(path, { mode: 0o755 });
        safeDirs.add(rel);
        dirMeta.push({ path, h }); // applied last: a read-only dir must still take its children
        break;
      }
      case 'file': {
        await clear(path);
        await pipeline(entry.body, createWriteStream(path, { mode: 0o600 }));
        size += h.size;
        await setMeta(path, h);
        break;
      }
      case 'symlink':
        await clear(path);
        await symlink(h.linkname, path);
        await setMeta(path, h);
        break;
      case 'hardlink': {
        const target = normalizeTarPath(h.linkname);
        if (target === '' || target.split('/').includes('..')) throw new LayerError(`hard link ${JSON.stringify(rel)} points outside the layer: ${JSON.stringify(h.linkname)}`);
        const st = await lstatOrUndefined(join(dest, target));
        if (!st) throw new LayerError(`hard link ${JSON.stringify(rel)} points at ${JSON.stringify(target)}, which is not in this layer`);
        if (st.isDirectory()) throw new LayerError(`hard link ${JSON.stringify(rel)} points at directory ${JSON.stringify(target)}`);
        await clear(path);
        await link(join(dest, target), path);
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        await clear(path);
        await mknod(path, h.type === 'char' ? 'c' : h.type === 'block' ? 'b' : 'p', h.devmajor, h.devminor);
        await setMeta(path, h);
        break;
    }
  }
  for await (const _ of bytes) {
    // The zero padding after the end-of-archive blocks is part of what diff_id hashes.
  }
  for (const dir of opaque) await hideLower(dest, dir, lowerDirs);
  for (const { path, h } of dirMeta.reverse()) await setMeta(path, h);
  return { diffId: 'sha256:' + hash.digest('hex'), size, entries };
}

/**
 * Makes `rel` in `dest` hide everything the lower layers hold there: a whiteout for each lower
 * name this layer lacks, and the same one level down for directories both have (overlay would
 * otherwise merge them).
 */
async function hideLower(dest: string, rel: string, lowerDirs: readonly string[]): Promise<void> {
  const lowerNames = new Map<string, boolean>(); // name -> is a directory in some lower layer
  for (const lower of lowerDirs) {
    const st = await lstatOrUndefined(join(lower, rel));
    if (!st?.isDirectory()) continue;
    for (const d of await readdir(join(lower, rel), { withFileTypes: true })) {
      lowerNames.set(d.name, (lowerNames.get(d.name) ?? false) || d.isDirectory());
    }
  }
  for (const [name, lowerIsDir] of [...lowerNames].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const ours = await lstatOrUndefined(join(dest, rel, name));
    if (!ours) await mknod(join(dest, rel, name), 'c', 0, 0);
    else if (ours.isDirectory() && lowerIsDir) await hideLower(dest, rel ? `${rel}/${name}` : name, lowerDirs);
  }
}
