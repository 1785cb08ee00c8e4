// `shoal image ls|inspect|rm|pull|load`: this node's image store, through the local daemon's
// Engine service, printed the way `docker image …` prints it:
//
//   REPOSITORY                        TAG       IMAGE ID       CREATED        SIZE
//   198.18.0.254:5000/shoal/busybox   latest    3f57d9401f8d   56 years ago   2.19MB
//
// Images are node-local, like Docker's: the commands work on a node outside any swarm, and a
// service's tasks find images loaded here before they would pull.
import * as grpc from '@grpc/grpc-js';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagValues } from '../../util/flags.js';
import {
  EngineClient,
  type ImageDetail,
  type ImageInspectRequest,
  type ImageInspectResponse,
  type ImageListRequest,
  type ImageListResponse,
  type ImageLoadResponse,
  type ImagePullMessage,
  type ImageRemoveRequest,
  type ImageRemoveResponse,
  type ImageSummary,
  type PullProgress,
} from '../../proto/gen/local.js';
import { hostFrom } from '../client.js';
import { formatRows } from '../format.js';
import { renderInspect } from '../dockerjson.js';
import { humanDuration } from '../units.js';

// ---- the Engine client --------------------------------------------------------------------------

export function engineClient(global: FlagValues): EngineClient {
  return new EngineClient(hostFrom(global), grpc.credentials.createInsecure());
}

/** A failed Engine call as the one line the user sees. */
export function engineError(e: grpc.ServiceError, client: grpc.Client): UserError {
  // Only the channel's own failure: a daemon's UNAVAILABLE (an unreachable registry) has its own words.
  if (e.code === grpc.status.UNAVAILABLE && /^(No connection established|Failed to connect)/i.test(e.details)) {
    return new UserError(`Cannot connect to the shoal daemon at ${client.getChannel().getTarget()}. Is shoald running?`);
  }
  return new UserError(e.details || e.message);
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
interface EngineApi {
  imageList: [ImageListRequest, ImageListResponse];
  imageInspect: [ImageInspectRequest, ImageInspectResponse];
  imageRemove: [ImageRemoveRequest, ImageRemoveResponse];
}

/** One unary Engine call as a promise, on a fresh connection. */
export function engineCall<K extends keyof EngineApi>(global: FlagValues, name: K, req: EngineApi[K][0], timeoutMs = 60_000): Promise<EngineApi[K][1]> {
  const client = engineClient(global);
  const method = client[name] as unknown as Unary<EngineApi[K][0], EngineApi[K][1]>;
  return new Promise<EngineApi[K][1]>((resolve, reject) =>
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res?: EngineApi[K][1]) =>
      err ? reject(engineError(err, client)) : resolve(res as EngineApi[K][1]),
    ),
  ).finally(() => client.close());
}

// ---- formatting -------------------------------------------------------------------------------

/** go-units' HumanSizeWithPrecision(size, 3), what `docker image ls` prints: `2.19MB`, `142MB`, `512B`. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < units.length - 1) {
    size /= 1000;
    i++;
  }
  return `${Number(size.toPrecision(3))}${units[i]}`;
}

/** `repo:tag` → [repo, tag]; the tag is after the last ':' that follows the last '/'. */
export function splitTag(name: string): [string, string] {
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? [name.slice(0, colon), name.slice(colon + 1)] : [name, '<none>'];
}

/** `repo@sha256:…` → [repo, digest]. */
function splitDigest(name: string): [string, string] {
  const at = name.indexOf('@');
  return at < 0 ? [name, '<none>'] : [name.slice(0, at), name.slice(at + 1)];
}

const shortId = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

export const imageHeaders = { Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE' };
export const imageTable = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
export const imageDigestTable = 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';

export interface ImageRowOptions {
  now: number;
  noTrunc?: boolean;
  /** Only images of this repository, and this tag when it has one (`image ls busybox:latest`). */
  reference?: string;
}

/** `image ls` rows: one per name (an unnamed image is `<none> <none>`), newest image first. */
export function imageRows(images: readonly ImageSummary[], o: ImageRowOptions): Record<string, string>[] {
  const [wantRepo, wantTag] = o.reference ? splitTag(o.reference) : [undefined, undefined];
  // Newest first (Docker's order); then named before unnamed, by name.
  const name = (i: ImageSummary) => i.repoTags[0] ?? '\uffff';
  const sorted = [...images].sort((a, b) => (Date.parse(b.created) || 0) - (Date.parse(a.created) || 0) || (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
  const rows: Record<string, string>[] = [];
  for (const img of sorted) {
    const created = Date.parse(img.created);
    const digests = new Map(img.repoDigests.map(splitDigest));
    const names = img.repoTags.length > 0 ? img.repoTags.map(splitTag) : [[digests.keys().next().value ?? '<none>', '<none>'] as [string, string]];
    for (const [repo, tag] of names) {
      if (wantRepo !== undefined && (repo !== wantRepo || (o.reference!.includes(':') && wantTag !== '<none>' && tag !== wantTag))) continue;
      rows.push({
        Repository: repo,
        Tag: tag,
        Digest: digests.get(repo) ?? '<none>',
        ID: o.noTrunc ? img.id : shortId(img.id),
        CreatedSince: Number.isNaN(created) ? 'N/A' : `${humanDuration(Math.max(0, o.now - created))} ago`,
        CreatedAt: Number.isNaN(created) ? '' : new Date(created).toISOString(),
        Size: humanSize(img.size),
      });
    }
  }
  return rows;
}

/** `image inspect`'s document: Docker's keys, so `--format '{{.Config.Cmd}}'` works as there. */
export function inspectDocument(d: ImageDetail): Record<string, unknown> {
  const s = d.summary;
  let config: unknown = {};
  try {
    config = JSON.parse(d.configJson || '{}');
  } catch {
    config = {};
  }
  return {
    Id: s?.id ?? '',
    RepoTags: s?.repoTags ?? [],
    RepoDigests: s?.repoDigests ?? [],
    Created: s?.created ?? '',
    Config: config,
    Architecture: s?.architecture ?? '',
    Os: s?.os ?? '',
    Size: s?.size ?? 0,
    RootFS: { Type: 'layers', Layers: d.layers.map((l) => l.diffId) },
    Descriptor: { mediaType: d.manifestMediaType, digest: d.manifestDigest },
    Layers: d.layers.map((l) => ({ Digest: l.digest, MediaType: l.mediaType, DiffID: l.diffId, Size: l.size })),
  };
}

// ---- pull progress ----------------------------------------------------------------------------

const PROGRESS_WIDTH = 50;

/** Docker's `[=====>      ]` bar. */
export function progressBar(received: number, total: number): string {
  if (total <= 0) return '';
  const filled = Math.min(PROGRESS_WIDTH, Math.floor((received / total) * PROGRESS_WIDTH));
  const bar = filled >= PROGRESS_WIDTH ? '='.repeat(PROGRESS_WIDTH) : '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(PROGRESS_WIDTH - filled);
  return `[${bar}] ${humanSize(received)}/${humanSize(total)}`;
}

/**
 * `image pull`'s display: one line per layer, Docker's words. On a terminal the block is redrawn
 * in place; otherwise a line is printed each time a layer changes state (never for bytes).
 */
export class PullDisplay {
  private readonly layers = new Map<string, { status: string; bar: string; existed: boolean }>();
  private drawn = 0;
  downloaded = false;

  constructor(private readonly tty: boolean) {}

  /** Text to write for one progress event. */
  update(p: PullProgress): string {
    if (p.kind !== 'layer') {
      if (p.status === 'downloaded') this.downloaded = true;
      return '';
    }
    const id = shortId(p.digest);
    const prev = this.layers.get(id) ?? { status: '', bar: '', existed: false };
    const existed = prev.existed || p.status === 'exists';
    let status: string;
    let bar = '';
    switch (p.status) {
      case 'exists':
        status = 'Already exists';
        break;
      case 'downloading':
        status = p.received ? 'Downloading' : 'Pulling fs layer';
        bar = p.received ? progressBar(p.received, p.total) : '';
        break;
      case 'downloaded':
        this.downloaded = true;
        status = 'Download complete';
        break;
      case 'extracting':
        status = existed ? 'Already exists' : 'Extracting';
        break;
      default:
        status = existed ? 'Already exists' : 'Pull complete';
    }
    this.layers.set(id, { status, bar, existed });
    if (this.tty) {
      const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
      this.drawn = this.layers.size;
      return up + [...this.layers].map(([lid, l]) => `\x1b[2K${lid}: ${l.status}${l.bar ? ' ' + l.bar : ''}\n`).join('');
    }
    return status === prev.status ? '' : `${id}: ${status}\n`;
  }
}

/** The repository digest a pull of `reference` resolved to, from the image's repo digests. */
export function pulledDigest(reference: string, image: ImageSummary): string | undefined {
  const repo = splitTag(reference.split('@')[0]!)[0];
  return image.repoDigests.map(splitDigest).find(([r]) => r === repo)?.[1];
}

/** Docker's first lines of a pull: `Using default tag: latest` (no tag given), `TAG: Pulling from REPOSITORY`. */
export function pullHeader(given: string, full: string): string {
  const [name, digest] = full.split('@') as [string, string | undefined];
  const [repo, tag] = splitTag(name);
  const repository = repo.slice(repo.indexOf('/') + 1); // without the registry
  const lastPart = given.split('@')[0]!.split('/').pop()!;
  const defaulted = !given.includes('@') && !lastPart.includes(':');
  return `${defaulted ? 'Using default tag: latest\n' : ''}${digest ?? tag}: Pulling from ${repository}\n`;
}

async function pull(global: FlagValues, reference: string, out: NodeJS.WritableStream, quiet: boolean): Promise<void> {
  const client = engineClient(global);
  const display = new PullDisplay(Boolean((out as { isTTY?: boolean }).isTTY));
  try {
    await new Promise<void>((resolve, reject) => {
      const stream = client.imagePull({ reference });
      let full = reference;
      let familiar = reference;
      // Printed with the first progress, so a pull that fails at once prints only its error.
      let header = '';
      const flushHeader = () => {
        if (!quiet && header) out.write(header);
        header = '';
      };
      stream.on('data', (m: ImagePullMessage) => {
        if (m.reference) {
          full = m.reference;
          familiar = full.replace(/^docker\.io\/(library\/)?/, '');
          header = pullHeader(reference, full);
        }
        if (m.progress && !quiet) {
          flushHeader();
          out.write(display.update(m.progress));
        }
        if (m.image) {
          flushHeader();
          if (!quiet) {
            const digest = pulledDigest(familiar, m.image);
            if (digest) out.write(`Digest: ${digest}\n`);
            out.write(display.downloaded ? `Status: Downloaded newer image for ${familiar}\n` : `Status: Image is up to date for ${familiar}\n`);
          }
          out.write(`${full}\n`);
        }
      });
      stream.on('end', resolve);
      stream.on('error', (e: grpc.ServiceError) => reject(engineError(e, client)));
    });
  } finally {
    client.close();
  }
}

// ---- load -------------------------------------------------------------------------------------

const CHUNK = 512 * 1024;

/** Streams an archive to the daemon; the daemon answers with what it loaded. */
export async function loadArchive(global: FlagValues, input: NodeJS.ReadableStream, fileName: string): Promise<ImageSummary[]> {
  const client = engineClient(global);
  try {
    return await new Promise<ImageSummary[]>((resolve, reject) => {
      const call = client.imageLoad((err: grpc.ServiceError | null, res?: ImageLoadResponse) => (err ? reject(engineError(err, client)) : resolve(res?.images ?? [])));
      let first = true;
      input.on('data', (d: Buffer | string) => {
        const buf = typeof d === 'string' ? Buffer.from(d) : d;
        for (let i = 0; i < buf.length; i += CHUNK) {
          const ok = call.write({ fileName: first ? fileName : '', data: buf.subarray(i, i + CHUNK) });
          first = false;
          if (!ok) {
            input.pause();
            call.once('drain', () => input.resume());
          }
        }
      });
      input.on('end', () => call.end());
      input.on('error', (e: Error) => {
        call.cancel();
        reject(new UserError(`cannot read ${fileName}: ${e.message}`));
      });
    });
  } finally {
    client.close();
  }
}

// ---- the commands -----------------------------------------------------------------------------

const lsCommand: Command = {
  name: 'ls',
  aliases: ['list'],
  summary: 'List images',
  usage: '[OPTIONS] [REPOSITORY[:TAG]]',
  maxArgs: 1,
  flags: [
    { name: 'digests', kind: 'bool', description: 'Show digests' },
    { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' },
    { name: 'no-trunc', kind: 'bool', description: "Don't truncate output" },
    { name: 'quiet', short: 'q', kind: 'bool', description: 'Only show image IDs' },
  ],
  run: async ({ args, flags, global, out }) => {
    const { images } = await engineCall(global, 'imageList', {});
    const rows = imageRows(images, { now: Date.now(), noTrunc: Boolean(flags['no-trunc']), ...(args[0] ? { reference: args[0] } : {}) });
    if (flags.quiet) return void out.write([...new Set(rows.map((r) => r.ID))].map((id) => id + '\n').join(''));
    out.write(formatRows(rows, String(flags.format ?? ''), flags.digests ? imageDigestTable : imageTable, imageHeaders));
  },
};

const inspectCommand: Command = {
  name: 'inspect',
  summary: 'Display detailed information on one or more images',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  minArgs: 1,
  flags: [{ name: 'format', short: 'f', kind: 'string', description: 'Format output using a custom template: "json", or a Go template over the image' }],
  run: async ({ args, flags, global, out }) => {
    const found: Record<string, unknown>[] = [];
    const missing: string[] = [];
    for (const ref of args) {
      try {
        found.push(inspectDocument((await engineCall(global, 'imageInspect', { reference: ref })).image!));
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        missing.push(e.message);
      }
    }
    out.write(renderInspect(found, flags.format === undefined ? undefined : String(flags.format)));
    if (missing.length) throw new UserError(missing.join('\n'));
  },
};

const rmCommand: Command = {
  name: 'rm',
  aliases: ['remove', 'rmi'],
  summary: 'Remove one or more images',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  minArgs: 1,
  flags: [{ name: 'force', short: 'f', kind: 'bool', description: 'Force removal of the image' }],
  run: async ({ args, flags, global, out }) => {
    const errors: string[] = [];
    for (const ref of args) {
      try {
        const r = await engineCall(global, 'imageRemove', { reference: ref, force: Boolean(flags.force) });
        out.write([...r.untagged.map((n) => `Untagged: ${n}\n`), ...r.deleted.map((d) => `Deleted: ${d}\n`)].join(''));
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        errors.push(e.message);
      }
    }
    if (errors.length) throw new UserError(errors.join('\n'));
  },
};

const pullCommand: Command = {
  name: 'pull',
  summary: "Download an image from a registry into this node's image store",
  usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
  minArgs: 1,
  maxArgs: 1,
  flags: [{ name: 'quiet', short: 'q', kind: 'bool', description: 'Suppress verbose output' }],
  run: ({ args, flags, global, out }) => pull(global, args[0]!, out, Boolean(flags.quiet)),
};

const loadCommand: Command = {
  name: 'load',
  summary: 'Load images from a tar archive (docker save, or an OCI archive) or STDIN',
  usage: '[OPTIONS]',
  maxArgs: 0,
  flags: [
    { name: 'input', short: 'i', kind: 'string', description: 'Read from tar archive file, instead of STDIN' },
    { name: 'quiet', short: 'q', kind: 'bool', description: 'Suppress the load output' },
  ],
  run: async ({ flags, global, out }) => {
    const file = flags.input === undefined ? '' : String(flags.input);
    if (!file && process.stdin.isTTY) throw new UserError('requested load from stdin, but stdin is empty (use -i FILE, or pipe an archive in)');
    const input = file ? createReadStream(file) : process.stdin;
    const images = await loadArchive(global, input, file ? basename(file) : 'stdin.tar');
    if (flags.quiet) return;
    for (const img of images) {
      if (img.repoTags.length === 0) out.write(`Loaded image ID: ${img.id}\n`);
      for (const t of img.repoTags) out.write(`Loaded image: ${t}\n`);
    }
  },
};

export const imageCommand: Command = {
  name: 'image',
  summary: "Manage this node's images",
  subcommands: [inspectCommand, loadCommand, lsCommand, pullCommand, rmCommand],
};
