// The deploy of a converted stack against the Control API, done client-side as Docker's CLI does:
// networks and configs first (external ones must exist; a config's data cannot change, as
// Docker's cannot), then services in dependency order — created when
// new, updated only when their spec differs from the current one (so only those roll), waiting
// for a `service_healthy` dependency's tasks to run and be healthy before its dependents. `--prune`
// removes the stack's services no longer in the file. `stack rm` is here too: services, then the
// networks (retried while the services' tasks still hold them), then the configs.
import type { Config, Network, Service, ServiceSpec, Task } from '../../proto/gen/objects.js';
import { UserError } from '../../util/command.js';
import type { call } from '../client.js';
import { normalizeSpec } from '../servicespec.js';
import { formatDuration } from '../units.js';
import { NAMESPACE_LABEL, type StackConfig, type StackModel } from './convert.js';

type Method = Parameters<typeof call>[1];

/** `call` with the daemon already chosen: `(method, request) → response`. */
export type Caller = <K extends Method>(name: K, req: Parameters<typeof call<K>>[2]) => ReturnType<typeof call<K>>;

export interface DeployOptions {
  prune: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** How long a `service_healthy` dependency may take to become healthy. */
  healthTimeoutMs: number;
  pollMs?: number;
  /** Injected for tests; real time otherwise. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const stackFilter = (stack: string) => ({ label: `${NAMESPACE_LABEL}=${stack}` });
export const inStack = (labels: Record<string, string> | undefined, stack: string) => labels?.[NAMESPACE_LABEL] === stack;

/** The stack's services, by their labels (the manager's filter applied again here). */
export async function stackServices(api: Caller, stack: string): Promise<{ services: Service[]; statuses: Awaited<ReturnType<typeof call<'listServices'>>>['statuses'] }> {
  const res = await api('listServices', { filters: stackFilter(stack) });
  return { services: res.services.filter((s) => inStack(s.spec?.annotations?.labels, stack)), statuses: res.statuses };
}

export async function stackNetworks(api: Caller, stack: string): Promise<Network[]> {
  const res = await api('listNetworks', { filters: stackFilter(stack) });
  return res.networks.filter((n) => inStack(n.spec?.annotations?.labels, stack));
}

export async function stackConfigs(api: Caller, stack: string): Promise<Config[]> {
  const res = await api('listConfigs', { filters: stackFilter(stack) });
  return res.configs.filter((c) => inStack(c.spec?.annotations?.labels, stack));
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/**
 * The stack's configs created where missing; returns every config name the services may use → id.
 * A config that exists with other data is refused: configs are immutable, as in Docker.
 */
async function deployConfigs(api: Caller, configs: readonly StackConfig[], out: NodeJS.WritableStream): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  if (!configs.length) return ids;
  const existing = new Map((await api('listConfigs', { filters: {} })).configs.map((c) => [c.spec?.annotations?.name ?? '', c]));
  for (const c of configs) {
    const have = existing.get(c.name);
    if (c.external) {
      if (!have) throw new UserError(`config "${c.name}" is declared as external, but could not be found. You need to create it (shoal config create) before the stack is deployed`);
    } else if (have) {
      if (!sameBytes(have.spec?.data ?? new Uint8Array(0), c.spec!.data)) {
        throw new UserError(`config ${c.name} already exists with other data: a config cannot be changed; give the new data a new name (e.g. name: ${c.name}_v2) and deploy again`);
      }
    } else {
      out.write(`Creating config ${c.name}\n`);
      const res = await api('createConfig', { spec: c.spec! });
      if (!res.config) throw new UserError(`the manager returned no config for ${c.name}`);
      ids.set(c.name, res.config.id);
      continue;
    }
    ids.set(c.name, have.id);
  }
  return ids;
}

/** A spec as JSON with sorted keys, server-filled fields left out: equal text, equal spec. */
export function canonicalSpec(spec: ServiceSpec): string {
  const s = normalizeSpec(spec);
  delete s.mode;
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
    return v;
  };
  return JSON.stringify(sortKeys(s));
}

/** What a redeploy would send, given the current spec: the new one with the fields the user does not own kept. */
export function desiredAgainst(current: ServiceSpec, desired: ServiceSpec): ServiceSpec {
  const spec = normalizeSpec(desired);
  if (spec.task) spec.task.forceUpdate = current.task?.forceUpdate ?? 0;
  return spec;
}

export function specChanged(current: ServiceSpec, desired: ServiceSpec): boolean {
  return canonicalSpec(current) !== canonicalSpec(desiredAgainst(current, desired));
}

export async function deployStack(api: Caller, model: StackModel, o: DeployOptions): Promise<void> {
  for (const w of model.warnings) o.err.write(w + '\n');
  const all = (await api('listNetworks', { filters: {} })).networks;
  const ids = new Map<string, string>();
  for (const n of all) ids.set(n.spec?.annotations?.name ?? '', n.id);
  for (const n of model.networks) {
    if (n.external) {
      if (!ids.has(n.name)) throw new UserError(`network "${n.name}" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed`);
      continue;
    }
    if (ids.has(n.name)) continue;
    o.out.write(`Creating network ${n.name}\n`);
    const res = await api('createNetwork', { spec: n.spec! });
    if (!res.network) throw new UserError(`the manager returned no network for ${n.name}`);
    ids.set(n.name, res.network.id);
  }

  const configIds = await deployConfigs(api, model.configs, o.out);

  const { services: existing } = await stackServices(api, model.namespace);
  const current = new Map(existing.map((s) => [s.spec?.annotations?.name ?? '', s]));
  const deployed = new Map<string, Service>();
  for (const s of model.services) {
    for (const d of s.dependsOn.filter((x) => x.healthy)) {
      const dep = deployed.get(d.service);
      if (dep) await waitHealthy(api, dep, o);
    }
    const spec = normalizeSpec(s.spec);
    for (const a of spec.task?.networks ?? []) a.target = ids.get(a.target) ?? a.target;
    // By id, as the manager stores them, so an unchanged service compares equal.
    for (const r of spec.task?.container?.configs ?? []) r.configId = configIds.get(r.configName) ?? r.configId;
    const cur = current.get(s.name);
    if (cur) {
      if (!specChanged(cur.spec ?? {}, spec)) {
        deployed.set(s.key, cur);
        continue;
      }
      o.out.write(`Updating service ${s.name} (id: ${cur.id})\n`);
      const res = await api('updateService', { service: cur.id, version: cur.meta?.version ?? 0, spec: desiredAgainst(cur.spec ?? {}, spec), rollback: '' });
      for (const w of res.warnings) o.err.write(w + '\n');
      deployed.set(s.key, res.service ?? cur);
    } else {
      o.out.write(`Creating service ${s.name}\n`);
      const res = await api('createService', { spec });
      for (const w of res.warnings) o.err.write(w + '\n');
      if (!res.service) throw new UserError(`the manager returned no service for ${s.name}`);
      deployed.set(s.key, res.service);
    }
  }

  if (o.prune) {
    const wanted = new Set(model.services.map((s) => s.name));
    for (const s of existing.filter((x) => !wanted.has(x.spec?.annotations?.name ?? '')).sort(byName)) {
      o.out.write(`Removing service ${s.spec?.annotations?.name ?? s.id}\n`);
      await api('removeService', { service: s.id });
    }
  }
}

const byName = (a: { spec?: { annotations?: { name: string } | null } | null }, b: typeof a) => ((a.spec?.annotations?.name ?? '') < (b.spec?.annotations?.name ?? '') ? -1 : 1);

const hasHealthcheck = (s: Service) => {
  const test = s.spec?.task?.container?.healthcheck?.test ?? [];
  return test.length > 0 && test[0] !== 'NONE';
};

/** Tasks of the service's current spec that run (and are healthy, when the service checks health). */
export function healthyTasks(service: Service, tasks: readonly Task[]): Task[] {
  const check = hasHealthcheck(service);
  return tasks.filter(
    (t) => t.serviceId === service.id && t.desiredState === 'RUNNING' && t.status?.state === 'RUNNING' && t.specVersion === service.specVersion && (check ? t.status.health === 'healthy' : t.status.health !== 'unhealthy'),
  );
}

/** How many healthy tasks make the service ready: its replicas, or (global) every task meant to run. */
function wantedTasks(service: Service, tasks: readonly Task[]): number {
  if (service.spec?.replicated) return Number(service.spec.replicated.replicas);
  return Math.max(1, tasks.filter((t) => t.serviceId === service.id && t.desiredState === 'RUNNING').length);
}

/** Polls until the service's tasks run and are healthy; a timeout names the service and how far it got. */
export async function waitHealthy(api: Caller, service: Service, o: DeployOptions): Promise<void> {
  const name = service.spec?.annotations?.name ?? service.id;
  const sleep = o.sleep ?? realSleep;
  const now = o.now ?? Date.now;
  const deadline = now() + o.healthTimeoutMs;
  let said = false;
  let last = '';
  for (;;) {
    const fresh = (await api('getService', { service: service.id })).service ?? service;
    const tasks = (await api('listTasks', { filters: { service: service.id } })).tasks;
    const ready = healthyTasks(fresh, tasks).length;
    const wanted = wantedTasks(fresh, tasks);
    last = `${ready}/${wanted}`;
    if (ready >= wanted) return;
    if (!said) o.out.write(`Waiting for service ${name} to be ${hasHealthcheck(fresh) ? 'healthy' : 'running'} (${last})\n`);
    said = true;
    if (now() >= deadline) {
      throw new UserError(`service ${name} was not ${hasHealthcheck(fresh) ? 'running and healthy' : 'running'} within ${formatDuration(o.healthTimeoutMs)} (${last} tasks ready): the services that depend on it were not deployed`);
    }
    await sleep(o.pollMs ?? 1000);
  }
}

export interface RemoveOptions {
  out: NodeJS.WritableStream;
  /** How long to keep retrying a network its tasks still hold. */
  networkTimeoutMs: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** `stack rm`: the stack's services, then its networks and configs. Returns false when the stack had nothing. */
export async function removeStack(api: Caller, stack: string, o: RemoveOptions): Promise<boolean> {
  const { services } = await stackServices(api, stack);
  const networks = await stackNetworks(api, stack);
  const configs = await stackConfigs(api, stack);
  if (!services.length && !networks.length && !configs.length) return false;
  const errors: string[] = [];
  for (const s of [...services].sort(byName)) {
    o.out.write(`Removing service ${s.spec?.annotations?.name ?? s.id}\n`);
    await api('removeService', { service: s.id }).catch((e: Error) => errors.push(`failed to remove service ${s.spec?.annotations?.name ?? s.id}: ${e.message}`));
  }
  const sleep = o.sleep ?? realSleep;
  const now = o.now ?? Date.now;
  const deadline = now() + o.networkTimeoutMs;
  for (const n of [...networks].sort(byName)) {
    const name = n.spec?.annotations?.name ?? n.id;
    o.out.write(`Removing network ${name}\n`);
    // The removed services' tasks release the network as they stop: retry until they have.
    for (;;) {
      const failure = await api('removeNetwork', { network: n.id }).then(
        () => null,
        (e: Error) => e,
      );
      if (!failure || /not found/i.test(failure.message)) break;
      if (now() >= deadline) {
        errors.push(`failed to remove network ${name}: ${failure.message}`);
        break;
      }
      await sleep(o.pollMs ?? 500);
    }
  }
  // Services are gone from the store at once, so nothing of the stack holds its configs now.
  for (const c of [...configs].sort(byName)) {
    const name = c.spec?.annotations?.name ?? c.id;
    o.out.write(`Removing config ${name}\n`);
    await api('removeConfig', { config: c.id }).catch((e: Error) => {
      if (!/not found/i.test(e.message)) errors.push(`failed to remove config ${name}: ${e.message}`);
    });
  }
  if (errors.length) throw new UserError(errors.join('\n'));
  return true;
}
