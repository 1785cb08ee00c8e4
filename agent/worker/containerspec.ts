// A task's ContainerSpec (the cluster's words) → the runtime's ContainerSpec (the node's words).
// Pure: the controller supplies what only it knows (container id, prepared rootfs, image config,
// network setup). validateTask() runs before anything is prepared, so a spec this node cannot run
// is rejected with a message naming the bad value instead of failing halfway.
import { expandTemplate, templateValues } from './templates.js';
import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import type { HealthConfig as TaskHealthConfig, Task } from '../../proto/gen/objects.js';
import { healthCommand, type HealthCheckConfig } from '../runtime/health.js';
import type { ContainerSpec, HostEntry, ImageConfig, MountSpec } from '../runtime/runtime.js';
import { normalizeCapability } from '../runtime/spec/capabilities.js';
import { normalizeSignal } from '../runtime/spec/signals.js';
import type { NetworkSetup } from './network.js';
import { taskLabels, taskName } from './naming.js';

/** Docker's image health check (durations in nanoseconds), as found in an image config. */
export interface ImageHealthcheck {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

export interface ImageInfo {
  id: string;
  config: ImageConfig & { Healthcheck?: ImageHealthcheck | null };
}

/** The spec cannot run on this node: the task is REJECTED, never retried here. */
export class SpecRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpecRejectedError';
  }
}

export const DEFAULT_STOP_GRACE_MS = 10_000;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Docker's sizes for log max-size and the like: 100, 512k, 10m, 1g (binary units, as RAMInBytes). */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new Error(`invalid size "${text}": expected a number with an optional unit k, m, g or t (e.g. 10m)`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] as number;
  return Math.floor(Number(m[1]) * unit);
}

/** An extra /etc/hosts line: hosts(5)'s "IP name [alias...]" or Docker's --add-host "name:IP". */
export function parseHostEntry(text: string): HostEntry {
  const fields = text.trim().split(/\s+/);
  if (fields.length >= 2) return { ip: fields[0] as string, names: fields.slice(1) };
  const colon = text.indexOf(':');
  if (colon > 0 && colon < text.length - 1) return { ip: text.slice(colon + 1).trim(), names: [text.slice(0, colon).trim()] };
  throw new Error(`invalid host entry "${text}": expected "IP hostname [aliases...]" or "hostname:IP"`);
}

function containerSpecOf(task: Task): NonNullable<NonNullable<Task['spec']>['container']> {
  const c = task.spec?.container;
  if (!c) throw new SpecRejectedError(`task ${task.id} has no container spec`);
  return c;
}

/** Throws SpecRejectedError naming the first thing in the task this node cannot run. */
export function validateTask(task: Task): void {
  const c = containerSpecOf(task);
  const reject = (what: string, err: unknown): never => {
    throw new SpecRejectedError(`${what}: ${(err as Error).message}`);
  };
  if (c.image.trim() === '') throw new SpecRejectedError(`task ${task.id} has no image in its container spec`);
  for (const m of c.mounts) {
    if (!isAbsolute(m.target)) throw new SpecRejectedError(`mount target "${m.target}" must be an absolute path`);
    if (m.type === 'BIND' && !isAbsolute(m.source)) throw new SpecRejectedError(`bind mount source "${m.source}" must be an absolute host path`);
    if (m.type === 'VOLUME' && m.source !== '' && !VOLUME_NAME.test(m.source)) {
      throw new SpecRejectedError(`invalid volume name "${m.source}": use letters, digits, '_', '.', '-'`);
    }
  }
  if (c.stopSignal) {
    try {
      normalizeSignal(c.stopSignal);
    } catch (err) {
      reject('stop signal', err);
    }
  }
  for (const cap of [...c.capAdd, ...c.capDrop]) {
    try {
      normalizeCapability(cap);
    } catch (err) {
      reject('capabilities', err);
    }
  }
  if (c.healthcheck) {
    try {
      healthCommand(c.healthcheck.test);
    } catch (err) {
      reject('health check', err);
    }
  }
  if (c.log?.maxSize) {
    try {
      parseByteSize(c.log.maxSize);
    } catch (err) {
      reject('log max-size', err);
    }
  }
  for (const h of c.hosts) {
    try {
      parseHostEntry(h);
    } catch (err) {
      reject('hosts', err);
    }
  }
  for (const e of c.env) {
    if (e === '' || e.startsWith('=')) throw new SpecRejectedError(`invalid environment entry "${e}": expected KEY=VALUE`);
  }
  // Templates expand now, so a bad placeholder rejects the task before anything is made.
  expandTemplates(task);
}

/** The container spec's templated fields (hostname, env, mount sources) expanded for this task. */
function expandTemplates(task: Task): { hostname: string; env: string[]; sources: string[] } {
  const c = containerSpecOf(task);
  const values = templateValues(task);
  return {
    hostname: expandTemplate(c.hostname, values, 'hostname'),
    env: c.env.map((e) => expandTemplate(e, values, 'environment entry')),
    sources: c.mounts.map((m) => expandTemplate(m.source, values, 'mount source')),
  };
}

function taskHealth(h: TaskHealthConfig): HealthCheckConfig {
  return {
    test: h.test,
    ...(h.intervalMs > 0 ? { intervalMs: h.intervalMs } : {}),
    ...(h.timeoutMs > 0 ? { timeoutMs: h.timeoutMs } : {}),
    ...(h.retries > 0 ? { retries: h.retries } : {}),
    ...(h.startPeriodMs > 0 ? { startPeriodMs: h.startPeriodMs } : {}),
  };
}

const nsToMs = (ns: number | undefined): number | undefined => (ns !== undefined && ns > 0 ? Math.round(ns / 1e6) : undefined);

/**
 * The health check to run, Docker's way: the spec's replaces the image's (and ["NONE"] in the spec
 * turns the image's off); zero durations mean the defaults. Undefined: no health check.
 */
export function healthCheckFor(task: Task, image: ImageInfo | undefined): HealthCheckConfig | undefined {
  const spec = task.spec?.container?.healthcheck;
  if (spec && spec.test.length > 0) return healthCommand(spec.test) ? taskHealth(spec) : undefined;
  const img = image?.config.Healthcheck;
  if (!img?.Test || img.Test.length === 0 || !healthCommand(img.Test)) return undefined;
  const interval = nsToMs(img.Interval);
  const timeout = nsToMs(img.Timeout);
  const start = nsToMs(img.StartPeriod);
  return {
    test: img.Test,
    ...(interval !== undefined ? { intervalMs: interval } : {}),
    ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
    ...(start !== undefined ? { startPeriodMs: start } : {}),
    ...(img.Retries ? { retries: img.Retries } : {}),
  };
}

export interface RuntimeSpecInput {
  containerId: string;
  rootfs: string;
  image: ImageInfo;
  network: NetworkSetup;
}

function mountsOf(task: Task, containerId: string, sources: string[]): MountSpec[] {
  return containerSpecOf(task).mounts.map((m, i): MountSpec => {
    const readOnly = m.readOnly;
    switch (m.type) {
      case 'BIND':
        return { type: 'bind', source: sources[i]!, target: m.target, readOnly };
      case 'VOLUME': {
        // An anonymous volume gets a name of its own, stable for this container and target.
        const source = sources[i] || createHash('sha256').update(`${containerId}\0${i}\0${m.target}`).digest('hex');
        return { type: 'volume', source, target: m.target, readOnly };
      }
      case 'TMPFS':
        return { type: 'tmpfs', target: m.target, readOnly, ...(m.tmpfsSizeBytes > 0 ? { sizeBytes: m.tmpfsSizeBytes } : {}) };
    }
  });
}

/** Everything the runtime needs to create the task's container. Assumes validateTask() passed. */
export function toRuntimeSpec(task: Task, input: RuntimeSpecInput): ContainerSpec {
  const c = containerSpecOf(task);
  const limits = task.spec?.resources?.limits;
  const resources: NonNullable<ContainerSpec['resources']> = {};
  if (limits?.memoryBytes) resources.memoryBytes = limits.memoryBytes;
  if (limits?.nanoCpus) resources.nanoCpus = limits.nanoCpus;
  if (limits?.pids) resources.pidsLimit = limits.pids;
  const hosts = [...(input.network.hosts ?? []), ...c.hosts.map(parseHostEntry)];
  const expanded = expandTemplates(task);
  const spec: ContainerSpec = {
    id: input.containerId,
    name: taskName(task),
    rootfs: input.rootfs,
    image: {
      Entrypoint: input.image.config.Entrypoint ?? null,
      Cmd: input.image.config.Cmd ?? null,
      Env: input.image.config.Env ?? null,
      ...(input.image.config.WorkingDir ? { WorkingDir: input.image.config.WorkingDir } : {}),
      ...(input.image.config.User ? { User: input.image.config.User } : {}),
      ...(input.image.config.StopSignal ? { StopSignal: input.image.config.StopSignal } : {}),
    },
    env: expanded.env,
    mounts: mountsOf(task, input.containerId, expanded.sources),
    // The task's labels first: ours say which task this is and must not be overridden.
    labels: { ...c.labels, ...taskLabels(task) },
    stopGraceMs: c.stopGracePeriodMs > 0 ? c.stopGracePeriodMs : DEFAULT_STOP_GRACE_MS,
  };
  if (c.command.length > 0) spec.command = c.command;
  if (c.args.length > 0) spec.args = c.args;
  if (c.dir) spec.cwd = c.dir;
  if (c.user) spec.user = c.user;
  if (expanded.hostname) spec.hostname = expanded.hostname;
  if (Object.keys(resources).length > 0) spec.resources = resources;
  if (c.capAdd.length > 0) spec.capAdd = c.capAdd;
  if (c.capDrop.length > 0) spec.capDrop = c.capDrop;
  if (c.readOnly) spec.readOnlyRootfs = true;
  if (c.stopSignal) spec.stopSignal = c.stopSignal;
  if (c.log && (c.log.maxSize || c.log.maxFile > 0)) {
    spec.log = {
      ...(c.log.maxSize ? { maxSizeBytes: parseByteSize(c.log.maxSize) } : {}),
      ...(c.log.maxFile > 0 ? { maxFiles: c.log.maxFile } : {}),
    };
  }
  if (input.network.netnsPath) spec.netns = input.network.netnsPath;
  if (hosts.length > 0) spec.hosts = hosts;
  if (input.network.ip) spec.ip = input.network.ip;
  if (input.network.dns) spec.dns = input.network.dns;
  return spec;
}
