// The node-local Engine service (proto/local.proto) on shoald's unix socket: this machine's image
// store (`shoal image ls/inspect/rm/pull/load`) and commands in its tasks' containers
// (`shoal exec`). No manager is involved: images work before the node joins a swarm, and exec
// runs only where the task's container is (it names the node otherwise, when this node can know).
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  EngineService,
  type EngineHandlers,
  type ExecInput,
  type ExecOutput,
  type ExecStart,
  type ImageDetail,
  type ImageLoadChunk,
  type ImagePullMessage,
  type ImageSummary,
} from '../proto/gen/local.js';
import type { Task } from '../proto/gen/objects.js';
import { nodeImageStore } from '../agent/agent.js';
import { ImageInUseError, ImageNotFoundError, type ImageRecord, type ImageStore, type PullOptions } from '../agent/runtime/image/store.js';
import { familiarName, formatReference, parseReference, ReferenceError } from '../agent/runtime/image/reference.js';
import { RegistryError } from '../agent/runtime/image/registry.js';
import { layerBytes } from '../agent/runtime/image/layer.js';
import { readBody, readTar } from '../util/tar.js';
import { ExecUserError, NoSuchContainerError, type ExecSession } from '../agent/runtime/runtime.js';
import type { RuncRuntime } from '../agent/runtime/runc/runtime.js';
import { containerIdFor } from '../agent/worker/naming.js';
import type { Logger } from '../util/log.js';
import type { DaemonConfig } from './config.js';
import type { Swarm } from './swarm.js';
import { describeTask, resolveTask, TaskLookupError } from './tasklookup.js';

/** What the Engine needs of its node: an interface so tests can give it a runtime without a swarm. */
export interface EngineNode {
  images: ImageStore;
  /** Registry options for a pull (the daemon's --insecure-registry). */
  pullOptions(reference: string): PullOptions;
  /** Uploads in progress and exec bookkeeping; emptied at start. */
  scratchDir: string;
  /** null when the node runs no agent (not in a swarm). */
  agent(): {
    /** The tasks this node runs, with the status observed here. */
    tasks(): Task[];
    runtime(): RuncRuntime | null;
  } | null;
  /** The cluster's tasks and node names, when this node is a manager; null otherwise. */
  cluster(): { nodeId: string; tasks: Task[]; nodeName(id: string): string } | null;
  log?: Logger;
}

/** An error a client sees: a gRPC status and a message naming the bad value. */
export class EngineError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

function serviceError(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details };
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET']);

/** The status and message a failed call answers with. */
export function toStatus(e: unknown): { code: grpc.status; details: string } {
  const err = e as Error;
  if (err instanceof EngineError) return { code: err.code, details: err.message };
  if (err instanceof ImageNotFoundError) return { code: grpc.status.NOT_FOUND, details: err.message };
  if (err instanceof ImageInUseError) return { code: grpc.status.FAILED_PRECONDITION, details: err.message };
  if (err instanceof ReferenceError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof TaskLookupError) return { code: err.kind === 'ambiguous' ? grpc.status.INVALID_ARGUMENT : grpc.status.NOT_FOUND, details: err.message };
  if (err instanceof RegistryError) {
    const code = err.status === 404 ? grpc.status.NOT_FOUND : err.status === 401 || err.status === 403 ? grpc.status.PERMISSION_DENIED : grpc.status.UNAVAILABLE;
    return { code, details: err.message };
  }
  return { code: grpc.status.UNKNOWN, details: err?.message ?? String(e) };
}

export function imageSummary(img: ImageRecord): ImageSummary {
  return {
    id: img.id,
    repoTags: img.names.map(familiarName),
    repoDigests: img.repoDigests.map(familiarName),
    created: img.created ?? '',
    size: img.size,
    architecture: img.architecture,
    os: img.os,
  };
}

export function imageDetail(img: ImageRecord): ImageDetail {
  return {
    summary: imageSummary(img),
    manifestDigest: img.manifestDigest,
    manifestMediaType: img.manifestMediaType,
    configJson: JSON.stringify(img.config ?? {}),
    layers: img.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, diffId: l.diffId, size: l.size })),
  };
}

/** A pull's failure, naming the reference; a registry that cannot be reached says so. */
export function pullError(reference: string, e: unknown): EngineError {
  const { code, details } = toStatus(e);
  const sys = (e as NodeJS.ErrnoException).code;
  if (sys && NETWORK_ERRORS.has(sys)) {
    const registry = parseReference(reference).registry;
    return new EngineError(grpc.status.UNAVAILABLE, `cannot pull ${reference}: registry ${registry} is unreachable (${(e as Error).message})`);
  }
  return new EngineError(code, details.includes(reference) ? details : `cannot pull ${reference}: ${details}`);
}

/**
 * The names an image archive gives its images, fully spelled: `docker save`'s RepoTags, an OCI
 * index's ref names (a bare tag takes the file's name as its repository, as the store does).
 */
export async function archiveNames(path: string): Promise<Set<string>> {
  const names = new Set<string>();
  const add = (name: string) => {
    try {
      names.add(formatReference(parseReference(name)));
    } catch {
      // not a name the store would have given either
    }
  };
  const repo = (basename(path).replace(/(\.tar)?(\.gz|\.tgz)?$/, '') || 'image').toLowerCase();
  try {
    for await (const e of readTar(layerBytes(path))) {
      if (e.header.name === 'manifest.json') {
        const entries = JSON.parse((await readBody(e.body)).toString()) as Array<{ RepoTags?: string[] | null }>;
        for (const entry of Array.isArray(entries) ? entries : []) for (const tag of entry.RepoTags ?? []) add(tag);
      } else if (e.header.name === 'index.json') {
        const index = JSON.parse((await readBody(e.body)).toString()) as { manifests?: Array<{ annotations?: Record<string, string> }> };
        for (const m of index.manifests ?? []) {
          const a = m.annotations ?? {};
          const ref = a['io.containerd.image.name'] ?? a['org.opencontainers.image.ref.name'];
          if (ref) add(/^[\w][\w.-]{0,127}$/.test(ref) && !a['io.containerd.image.name'] ? `${repo}:${ref}` : ref);
        }
      }
    }
  } catch {
    // The store read it: an oddity here only costs the names in the answer.
  }
  return names;
}

type Callback<T> = (err: Partial<grpc.StatusObject> | null, value?: T) => void;

function reply<T>(cb: Callback<T>, work: () => Promise<T>): void {
  work().then(
    (v) => cb(null, v),
    (e: unknown) => cb(toStatus(e)),
  );
}

const emptyOutput: ExecOutput = { stdout: new Uint8Array(0), stderr: new Uint8Array(0), exited: false, exitCode: 0, taskId: '', containerId: '' };

export function engineHandlers(node: EngineNode): EngineHandlers {
  const images = node.images;
  // Leftovers of uploads and execs a killed daemon did not finish.
  const scratchReady = rm(node.scratchDir, { recursive: true, force: true }).then(() => mkdir(node.scratchDir, { recursive: true, mode: 0o700 }));
  const scratch = async (prefix: string): Promise<string> => {
    await scratchReady;
    return join(node.scratchDir, `${prefix}-${randomBytes(8).toString('hex')}`);
  };

  /** The task `ref` names among the tasks this node runs; else an error saying where it runs. */
  const localTask = (ref: string): Task => {
    const agent = node.agent();
    if (!agent) throw new EngineError(grpc.status.FAILED_PRECONDITION, `This node is not part of a swarm: it runs no tasks (looking for task "${ref}")`);
    try {
      return resolveTask(ref, agent.tasks());
    } catch (e) {
      if (!(e instanceof TaskLookupError) || e.kind !== 'none') throw e;
      const cluster = node.cluster();
      if (!cluster) throw new TaskLookupError('none', `no task "${ref}" runs on this node (to find where it runs, use "shoal service ps" on a manager)`);
      let found: Task;
      try {
        found = resolveTask(ref, cluster.tasks);
      } catch (e2) {
        if (e2 instanceof TaskLookupError && e2.kind === 'none') throw new TaskLookupError('none', `no such task: "${ref}"`);
        throw e2;
      }
      if (found.nodeId && found.nodeId !== cluster.nodeId) {
        const name = cluster.nodeName(found.nodeId);
        throw new EngineError(grpc.status.FAILED_PRECONDITION, `task ${describeTask(found)} runs on node ${name}, not on this node: run "shoal exec" on ${name}`);
      }
      throw new EngineError(grpc.status.FAILED_PRECONDITION, `task ${describeTask(found)} has not reached this node's agent yet (state ${found.status?.state ?? 'NEW'})`);
    }
  };

  const startExec = async (start: ExecStart, send: (o: Partial<ExecOutput>) => void): Promise<ExecSession> => {
    if (start.cmd.length === 0) throw new EngineError(grpc.status.INVALID_ARGUMENT, 'exec needs a command to run');
    const task = localTask(start.task);
    const runtime = node.agent()?.runtime();
    if (!runtime) throw new EngineError(grpc.status.UNAVAILABLE, 'the agent of this node is restarting: try again');
    const containerId = containerIdFor(task.id);
    let info;
    try {
      info = await runtime.inspect(containerId);
    } catch (e) {
      if (!(e instanceof NoSuchContainerError)) throw e;
      throw new EngineError(grpc.status.FAILED_PRECONDITION, `task ${describeTask(task)} has no container (task state ${task.status?.state ?? 'NEW'})`);
    }
    if (info.status !== 'running') {
      throw new EngineError(grpc.status.FAILED_PRECONDITION, `task ${describeTask(task)} is not running: its container is ${info.status}${info.exitCode !== undefined ? ` (exit code ${info.exitCode})` : ''}`);
    }
    let proc: ExecSession;
    try {
      // The runtime runs it with the container's own process settings (capabilities, limits, env).
      proc = await runtime.exec(containerId, start.cmd, {
        tty: start.tty,
        stdin: start.stdin,
        env: start.env,
        ...(start.workdir ? { cwd: start.workdir } : {}),
        ...(start.user ? { user: start.user } : {}),
        ...(start.size ? { size: start.size } : {}),
      });
    } catch (e) {
      if (e instanceof ExecUserError) throw new EngineError(grpc.status.INVALID_ARGUMENT, `user "${start.user}" in task ${describeTask(task)}: ${e.message}`);
      throw e;
    }
    proc.stdout.on('data', (d: Buffer) => send({ stdout: d }));
    proc.stderr.on('data', (d: Buffer) => send({ stderr: d }));
    node.log?.info('exec started', { task: task.id, container: containerId, cmd: start.cmd, tty: start.tty });
    send({ taskId: task.id, containerId });
    return proc;
  };

  return {
    imageList: (_call, cb) => reply(cb, async () => ({ images: (await images.list()).map(imageSummary) })),

    imageInspect: (call, cb) => reply(cb, async () => ({ image: imageDetail(await images.inspect(call.request.reference)) })),

    imageRemove: (call, cb) =>
      reply(cb, async () => {
        const ref = call.request.reference;
        try {
          return await images.remove(ref, { force: call.request.force });
        } catch (e) {
          if (!(e instanceof ImageInUseError)) throw e;
          // Container IDs are hashes of task IDs: name the tasks, which users know.
          const tasks = node.agent()?.tasks() ?? [];
          const users = e.users.map((c) => {
            const t = tasks.find((x) => containerIdFor(x.id) === c);
            return t ? `task ${describeTask(t)}` : `container ${c.slice(0, 12)}`;
          });
          throw new EngineError(grpc.status.FAILED_PRECONDITION, `unable to remove image ${ref}: it is in use by ${users.join(', ')} (use -f to remove it anyway)`);
        }
      }),

    imagePull: (call) => {
      const given = call.request.reference;
      void (async () => {
        let full = given;
        try {
          full = formatReference(parseReference(given));
          call.write({ reference: full, progress: null, image: null } satisfies ImagePullMessage);
          const image = await images.pull(given, {
            ...node.pullOptions(given),
            onProgress: (p) => call.write({ reference: '', progress: { digest: p.digest, kind: p.kind, status: p.status, received: p.received ?? 0, total: p.total ?? 0 }, image: null }),
          });
          call.write({ reference: '', progress: null, image: imageSummary(image) });
          call.end();
        } catch (e) {
          const err = e instanceof ReferenceError ? new EngineError(grpc.status.INVALID_ARGUMENT, e.message) : pullError(familiarName(full), e);
          node.log?.warn('image pull failed', { reference: given, error: err.message });
          call.emit('error', serviceError(err.code, err.message));
        }
      })();
    },

    imageLoad: (call, cb) => {
      let dir: string | undefined;
      let file: WriteStream | undefined;
      let opening: Promise<WriteStream> | undefined;
      let failed = false;
      const cleanup = () => (dir ? rm(dir, { recursive: true, force: true }) : Promise.resolve());
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        file?.destroy();
        void cleanup().then(() => cb(toStatus(e)));
      };
      // The first chunk names the archive: its file name is kept (it names OCI archives' repositories).
      const open = async (fileName: string): Promise<WriteStream> => {
        dir = await scratch('load');
        await mkdir(dir, { recursive: true });
        const name = basename(fileName).replace(/[^\w.-]/g, '_') || 'image.tar';
        const f = createWriteStream(join(dir, name === '.' || name === '..' ? 'image.tar' : name));
        f.on('error', fail);
        file = f;
        return f;
      };
      call.on('data', (chunk: ImageLoadChunk) => {
        opening ??= open(chunk.fileName);
        call.pause();
        opening.then(
          (f) => {
            if (chunk.data.length === 0 || f.write(chunk.data)) call.resume();
            else f.once('drain', () => call.resume());
          },
          (e: unknown) => fail(e),
        );
      });
      call.on('error', fail);
      call.on('end', () => {
        void (async () => {
          try {
            if (!opening) throw new EngineError(grpc.status.INVALID_ARGUMENT, 'image load: the archive is empty (nothing was sent)');
            const f = await opening;
            await new Promise<void>((resolve, reject) => f.end((e?: Error | null) => (e ? reject(e) : resolve())));
            if (failed) return;
            const path = f.path as string;
            const loaded = await images.load(path);
            // Each image with the names the archive gave it, not those it had from elsewhere.
            const declared = await archiveNames(path);
            await cleanup();
            cb(null, { images: loaded.map((img) => imageSummary({ ...img, names: img.names.filter((n) => declared.has(n)) })) });
          } catch (e) {
            const err = e instanceof EngineError || e instanceof ReferenceError ? e : new EngineError(grpc.status.INVALID_ARGUMENT, `image load: ${(e as Error).message}`);
            fail(err);
          }
        })();
      });
    },

    exec: (call) => {
      let proc: ExecSession | null = null;
      let started = false;
      let finished = false;
      let cancelled = false;
      const queued: ExecInput[] = [];
      const send = (o: Partial<ExecOutput>) => {
        if (finished) return;
        if (!call.write({ ...emptyOutput, ...o }) && proc) {
          // A slow client holds the process's output back instead of the daemon buffering it.
          const outputs = [proc.stdout, proc.stderr];
          for (const s of outputs) s.pause();
          call.once('drain', () => outputs.forEach((s) => s.resume()));
        }
      };
      const fail = (e: unknown) => {
        if (finished) return;
        finished = true;
        const { code, details } = toStatus(e);
        call.emit('error', serviceError(code, details));
      };
      const apply = (m: ExecInput) => {
        if (!proc) return void queued.push(m);
        if (m.stdin.length > 0) proc.write(m.stdin);
        if (m.resize) void proc.resize(m.resize);
        if (m.closeStdin) proc.closeStdin();
      };
      call.on('data', (m: ExecInput) => {
        if (started) return apply(m);
        started = true;
        if (!m.start) return fail(new EngineError(grpc.status.INVALID_ARGUMENT, 'the first Exec message must be a start message'));
        startExec(m.start, send)
          .then(async (p) => {
            proc = p;
            if (cancelled) await p.kill();
            for (const q of queued.splice(0)) apply(q);
            const code = await p.exited;
            send({ exited: true, exitCode: code });
            finished = true;
            call.end();
          })
          .catch((e: unknown) => fail(e));
      });
      // The client half-closed: it has no more input.
      call.on('end', () => apply({ stdin: new Uint8Array(0), closeStdin: true, start: null, resize: null }));
      // The client went away (Ctrl-C, a dropped connection): the process must not outlive it.
      call.on('cancelled', () => {
        cancelled = true;
        finished = true;
        void proc?.kill();
      });
      call.on('error', () => {
        cancelled = true;
        void proc?.kill();
      });
    },
  };
}

/** The Engine of this shoald: its node's image store, and the agent and manager of its swarm. */
export function swarmEngineNode(swarm: Swarm, config: DaemonConfig, log?: Logger): EngineNode {
  const insecure = new Set(config.insecureRegistries);
  return {
    images: nodeImageStore(config.dataRoot),
    // The same rule as the agent's pulls (agent/agent.ts).
    pullOptions: (reference) => ({ insecure: insecure.has(parseReference(reference).registry) }),
    scratchDir: join(config.dataRoot, 'engine'),
    agent: () => {
      const agent = swarm.agent;
      if (!agent) return null;
      return {
        tasks: () => agent.localTasks().map(({ task, status }) => ({ ...task, status })),
        runtime: () => agent.containerRuntime(),
      };
    },
    cluster: () => {
      const m = swarm.manager;
      const nodeId = swarm.state?.nodeId;
      if (!m || !nodeId) return null;
      const nodes = new Map(m.store.all('nodes').map((n) => [n.id, n.description?.hostname || n.id]));
      return { nodeId, tasks: m.store.all('tasks'), nodeName: (id) => nodes.get(id) ?? id };
    },
    ...(log ? { log } : {}),
  };
}

export function registerEngine(server: grpc.Server, swarm: Swarm, config: DaemonConfig, log?: Logger): void {
  server.addService(EngineService, engineHandlers(swarmEngineNode(swarm, config, log)));
}
