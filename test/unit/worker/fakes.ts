// In-memory stand-ins for the worker's collaborators: a Runtime whose containers exit when the
// test says so, an image provider with a fixed set of images, a network attacher that counts.
import { Readable } from 'node:stream';
import type { Task } from '../../../proto/gen/objects.js';
import type { HealthCheckConfig } from '../../../agent/runtime/health.js';
import {
  NoSuchContainerError,
  type ContainerInfo,
  type ContainerSpec,
  type ExecOptions,
  type ExecResult,
  type ExecSession,
  type ExitStatus,
  type LogEntry,
  type Runtime,
  type StopOptions,
} from '../../../agent/runtime/runtime.js';
import type { ImageInfo } from '../../../agent/worker/containerspec.js';
import { ImageUnavailableError, type ImageProvider } from '../../../agent/worker/images.js';
import type { NetworkAttacher, NetworkSetup } from '../../../agent/worker/network.js';

interface FakeContainer {
  spec: ContainerSpec;
  info: ContainerInfo;
  exited: Promise<ExitStatus>;
  exit: (code: number) => void;
}

let nextPid = 1000;

export class FakeRuntime implements Runtime {
  readonly containers = new Map<string, FakeContainer>();
  readonly calls: string[] = [];
  /** What a stop signal does to a running container: the exit code it ends with. */
  stopExitCode = 143;
  /** The health check's answer. */
  execResult: ExecResult = { exitCode: 0, stdout: '', stderr: '', timedOut: false };
  lastStop: StopOptions | undefined;

  async create(spec: ContainerSpec): Promise<ContainerInfo> {
    this.calls.push(`create ${spec.id}`);
    if (this.containers.has(spec.id)) throw new Error(`container ${spec.id} already exists`);
    let exit!: (code: number) => void;
    const exited = new Promise<ExitStatus>((resolve) => {
      exit = (code) => {
        const c = this.containers.get(spec.id);
        if (c && c.info.status !== 'exited') {
          c.info = { ...c.info, status: 'exited', exitCode: code, finishedAt: new Date() };
          delete c.info.pid;
        }
        resolve({ exitCode: code, finishedAt: new Date() });
      };
    });
    const info: ContainerInfo = { id: spec.id, name: spec.name ?? spec.id, status: 'created', pid: nextPid++, createdAt: new Date(), labels: spec.labels ?? {}, rootfs: spec.rootfs };
    this.containers.set(spec.id, { spec, info, exited, exit });
    return { ...info };
  }

  private get(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new NoSuchContainerError(id);
    return c;
  }

  async start(id: string): Promise<void> {
    this.calls.push(`start ${id}`);
    const c = this.get(id);
    if (c.info.status !== 'created') throw new Error(`container ${id} is ${c.info.status}`);
    c.info = { ...c.info, status: 'running', startedAt: new Date() };
  }

  /** The container's process exits with `code`. */
  exit(id: string, code: number): void {
    this.get(id).exit(code);
  }

  async stop(id: string, options: StopOptions = {}): Promise<ExitStatus> {
    this.calls.push(`stop ${id}`);
    this.lastStop = options;
    const c = this.get(id);
    if (c.info.status !== 'exited') c.exit(c.info.status === 'created' ? 137 : this.stopExitCode);
    return c.exited;
  }

  async kill(id: string): Promise<void> {
    this.get(id).exit(137);
  }

  async remove(id: string, options: { force?: boolean } = {}): Promise<void> {
    this.calls.push(`remove ${id}`);
    const c = this.get(id);
    if (c.info.status === 'running' && !options.force) throw new Error(`container ${id} is running`);
    c.exit(137);
    this.containers.delete(id);
  }

  async inspect(id: string): Promise<ContainerInfo> {
    return { ...this.get(id).info };
  }

  async list(): Promise<ContainerInfo[]> {
    return [...this.containers.values()].map((c) => ({ ...c.info }));
  }

  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const c = this.get(id);
    const signal = options.signal;
    if (!signal) return c.exited;
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      void c.exited.then((e) => {
        signal.removeEventListener('abort', onAbort);
        resolve(e);
      });
    });
  }

  logs(): AsyncIterable<LogEntry> {
    return { async *[Symbol.asyncIterator]() {} };
  }

  /** A session that plays back execResult: its output, then its exit code. */
  async exec(id: string, _argv: string[], _options?: ExecOptions): Promise<ExecSession> {
    this.get(id);
    const r = this.execResult;
    return {
      stdout: Readable.from(r.stdout ? [Buffer.from(r.stdout)] : []),
      stderr: Readable.from(r.stderr ? [Buffer.from(r.stderr)] : []),
      exited: Promise.resolve(r.exitCode),
      write: () => undefined,
      closeStdin: () => undefined,
      resize: async () => undefined,
      kill: async () => undefined,
    };
  }

  async close(): Promise<void> {}
}

export class FakeImages implements ImageProvider {
  readonly images = new Map<string, ImageInfo>();
  readonly prepared = new Set<string>();
  readonly released: string[] = [];

  constructor(images: Record<string, ImageInfo['config']> = { 'busybox:latest': { Cmd: ['sh'], Env: ['PATH=/bin'] } }) {
    for (const [ref, config] of Object.entries(images)) this.images.set(ref, { id: `sha256:${ref}`, config });
  }

  async ensure(reference: string): Promise<ImageInfo> {
    const image = this.images.get(reference);
    if (!image) throw new ImageUnavailableError(reference);
    return image;
  }

  async prepareRootfs(reference: string, containerId: string, dir: string): Promise<string> {
    await this.ensure(reference);
    this.prepared.add(containerId);
    return dir;
  }

  async releaseRootfs(containerId: string): Promise<void> {
    this.prepared.delete(containerId);
    this.released.push(containerId);
  }
}

export class FakeNetwork implements NetworkAttacher {
  readonly attached = new Set<string>();
  readonly released: string[] = [];

  async prepare(_task: Task, containerId: string): Promise<NetworkSetup> {
    this.attached.add(containerId);
    return { netnsPath: `/run/netns/fake-${containerId.slice(0, 6)}` };
  }

  async release(_task: Task, containerId: string): Promise<void> {
    if (this.attached.delete(containerId)) this.released.push(containerId);
  }
}

/** Health checks every few milliseconds, unhealthy after one failure: fast unit tests. */
export const FAST_HEALTH: HealthCheckConfig = { test: ['CMD', 'true'], intervalMs: 10, retries: 1, timeoutMs: 1000 };
