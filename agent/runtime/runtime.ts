// The node-local container runtime contract. The worker (task controllers) talks only to this
// interface; `runc/` implements it with runc + conmon. Everything here is plain data so a fake
// runtime for unit tests is a few lines.

/** The parts of an OCI image config (`config` in the image JSON) the runtime honours. */
export interface ImageConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

export type MountSpec =
  /** A host path bind-mounted into the container. */
  | { type: 'bind'; source: string; target: string; readOnly?: boolean }
  /** A named local volume: a directory the runtime keeps under its volumes dir. */
  | { type: 'volume'; source: string; target: string; readOnly?: boolean }
  /** A fresh tmpfs. */
  | { type: 'tmpfs'; target: string; sizeBytes?: number; mode?: number; readOnly?: boolean };

export interface HostEntry {
  ip: string;
  names: string[];
}

export interface DnsConfig {
  nameservers?: string[];
  search?: string[];
  options?: string[];
}

export interface LogConfig {
  /** Rotate the log file once it reaches this many bytes (Docker's `max-size`). 0 = never. */
  maxSizeBytes?: number;
  /** Keep at most this many files, the live one included (Docker's `max-file`). Default 1. */
  maxFiles?: number;
}

export interface ContainerSpec {
  /** Unique on this node: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters. */
  id: string;
  name?: string;
  /** A directory holding the container's root filesystem, already prepared (mounted) by the caller. */
  rootfs: string;
  /** The image's config: defaults for everything below. */
  image?: ImageConfig;
  /** Replaces the image's Entrypoint (and drops its Cmd unless `args` is given too), like swarm's `Command`. */
  command?: string[];
  /** Replaces the image's Cmd, like swarm's `Args`. */
  args?: string[];
  /** `KEY=VALUE`, added to (and overriding) the image's Env. */
  env?: string[];
  cwd?: string;
  /** `name`, `uid`, `name:group`, `uid:gid`…: names resolved through the rootfs's /etc/passwd and /etc/group. */
  user?: string;
  hostname?: string;
  mounts?: MountSpec[];
  resources?: {
    memoryBytes?: number;
    /** CPUs in units of 1e-9 (Docker's NanoCPUs): 1.5 CPUs = 1_500_000_000. */
    nanoCpus?: number;
    pidsLimit?: number;
  };
  /** Capability names with or without `CAP_`, or `ALL`. */
  capAdd?: string[];
  capDrop?: string[];
  readOnlyRootfs?: boolean;
  /** Join this network namespace (a path such as /run/netns/x); default: a new, empty one. */
  netns?: string;
  /** Extra /etc/hosts lines (the localhost lines and the hostname are always there). */
  hosts?: HostEntry[];
  /** This container's own address, written into /etc/hosts for its hostname. */
  ip?: string;
  dns?: DnsConfig;
  stopSignal?: string;
  /** Grace period between the stop signal and SIGKILL; default 10 s. */
  stopGraceMs?: number;
  labels?: Record<string, string>;
  log?: LogConfig;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'exited' | 'unknown';

export interface ContainerInfo {
  id: string;
  name: string;
  status: ContainerStatus;
  /** Host pid of the container's init process while it runs. */
  pid?: number;
  /** Set once the container has exited: 128+n when killed by signal n. */
  exitCode?: number;
  /** The kernel's OOM killer hit the container's cgroup (conmon saw the event). */
  oomKilled?: boolean;
  /** Why the status is 'unknown' or the exit code is missing. */
  error?: string;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  labels: Record<string, string>;
  rootfs: string;
}

export interface ExitStatus {
  exitCode: number;
  finishedAt: Date;
}

export interface StopOptions {
  /** Default: the spec's stopSignal, else the image's StopSignal, else SIGTERM. */
  signal?: string;
  /** Default: the spec's stopGraceMs, else 10 s. */
  graceMs?: number;
}

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  time: Date;
  /** The timestamp exactly as written (RFC 3339 with nanoseconds). */
  timestamp: string;
  /** The line without its newline. A line longer than conmon's buffer arrives in one piece. */
  line: string;
}

export interface LogOptions {
  /** Keep reading as the container writes, until it exits (or the iterator is closed). */
  follow?: boolean;
  /** Only the last n lines (before following). */
  tail?: number;
  /** Only lines written at or after this time. */
  since?: Date;
  /** Consumers format with formatLogEntry(); kept here so a CLI request maps 1:1. */
  timestamps?: boolean;
}

export interface TerminalSize {
  rows: number;
  cols: number;
}

export interface ExecOptions {
  /** A pseudo-terminal in the container: output then comes as one stream, on stdout. */
  tty?: boolean;
  /** Keep the process's stdin open for write(); without it the process reads /dev/null. */
  stdin?: boolean;
  /** `KEY=VALUE`, added to (and overriding) the container's environment. */
  env?: string[];
  cwd?: string;
  /** `name`, `uid`, `name:group`, `uid:gid`, resolved in the container; default: the container's user. */
  user?: string;
  /** The terminal's initial size (with tty). */
  size?: TerminalSize;
}

/** A running exec'd process: its output as it comes, its input, and its exit status at the end. */
export interface ExecSession {
  readonly stdout: NodeJS.ReadableStream;
  readonly stderr: NodeJS.ReadableStream;
  /** The exit status (128+n when signal n ended it), once all of its output has been read. */
  readonly exited: Promise<number>;
  write(data: Uint8Array): void;
  /** End of input: the process sees end of file (with a tty, the terminal's EOF character). */
  closeStdin(): void;
  resize(size: TerminalSize): Promise<void>;
  /** Kills the process in the container. */
  kill(): Promise<void>;
}

export interface CollectOptions extends ExecOptions {
  /** Kill the exec'd process after this long; the result then has timedOut set. */
  timeoutMs?: number;
  /** Output beyond this many bytes per stream is dropped. Default 1 MiB. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface Runtime {
  /** Writes the bundle and runs `runc create` under a fresh monitor; the process waits for start(). */
  create(spec: ContainerSpec): Promise<ContainerInfo>;
  start(id: string): Promise<void>;
  /** Stop signal, then SIGKILL after the grace period; resolves once the container has exited. */
  stop(id: string, options?: StopOptions): Promise<ExitStatus>;
  kill(id: string, signal?: string): Promise<void>;
  /** Deletes runtime state and files. A running container needs `force`, which kills it first. */
  remove(id: string, options?: { force?: boolean }): Promise<void>;
  inspect(id: string): Promise<ContainerInfo>;
  list(): Promise<ContainerInfo[]>;
  /** Resolves when the container has exited, at once if it already has. */
  wait(id: string, options?: { signal?: AbortSignal }): Promise<ExitStatus>;
  logs(id: string, options?: LogOptions): AsyncIterable<LogEntry>;
  /** Starts argv in the running container; its stdio streams (runExec() collects it instead). */
  exec(id: string, argv: string[], options?: ExecOptions): Promise<ExecSession>;
  /** Stops the runtime's background work (log rotation). Containers keep running. */
  close(): Promise<void>;
}

/** Thrown for a container id the runtime does not know. */
export class NoSuchContainerError extends Error {
  constructor(readonly id: string) {
    super(`no such container: ${id}`);
    this.name = 'NoSuchContainerError';
  }
}

/** The user an exec asked for does not exist in the container (the caller's mistake, not the runtime's). */
export class ExecUserError extends Error {
  constructor(
    readonly user: string,
    message: string,
  ) {
    super(message);
    this.name = 'ExecUserError';
  }
}

/** Docker's `--timestamps` rendering of one log entry. */
export function formatLogEntry(entry: LogEntry, options: { timestamps?: boolean } = {}): string {
  return options.timestamps ? `${entry.timestamp} ${entry.line}` : entry.line;
}

/**
 * Runs argv in the container to its end and collects its output (health checks, tests): at most
 * maxOutputBytes per stream, killed after timeoutMs.
 */
export async function runExec(runtime: Pick<Runtime, 'exec'>, id: string, argv: string[], options: CollectOptions = {}): Promise<ExecResult> {
  const { timeoutMs, maxOutputBytes, ...execOptions } = options;
  const session = await runtime.exec(id, argv, execOptions);
  const max = maxOutputBytes ?? 1024 * 1024;
  const collect = (stream: NodeJS.ReadableStream): { text: () => string; ended: Promise<void> } => {
    const chunks: Buffer[] = [];
    let length = 0;
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve).once('close', resolve).once('error', () => resolve());
    });
    stream.on('data', (d: Buffer) => {
      if (length < max) chunks.push(d.subarray(0, max - length));
      length += d.length;
    });
    return { text: () => Buffer.concat(chunks).toString(), ended };
  };
  const stdout = collect(session.stdout);
  const stderr = collect(session.stderr);
  let timedOut = false;
  const timer =
    timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          void session.kill();
        }, timeoutMs)
      : undefined;
  try {
    const [exitCode] = await Promise.all([session.exited, stdout.ended, stderr.ended]);
    return { exitCode, stdout: stdout.text(), stderr: stderr.text(), timedOut };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
