// Services: create, inspect, update (the spec replaced as a whole, against the version the client
// read), roll back, remove, list. What swarmkit's controlapi does, so `docker service` users get
// the same answers: the previous spec is kept for `service rollback`, a job runs again when its
// spec changes, and removing a service leaves its tasks to the orchestrator (the task reaper stops
// and deletes them).
import { Service, ServiceSpec, UpdateStatus } from '../../proto/gen/objects.js';
import type { CreateServiceRequest, ListServicesRequest, ServiceStatus, UpdateServiceRequest } from '../../proto/gen/control.js';
import { blank, copy } from '../store/blank.js';
import type { ReadView } from '../store/memory.js';
import { type ControlContext, idOf, nowOf } from './context.js';
import { checkVersionRead, exists, invalid, precondition, translated } from './errors.js';
import { applyFilters, checkFilters, matchesLabel } from './filters.js';
import { resolve } from './resolve.js';
import { modeOf, modeWord, normalizeServiceSpec, validateServiceName } from './servicespec.js';
import { serviceStatus } from './status.js';

const nameOf = (s: Service): string => s.spec?.annotations?.name ?? s.id;
const isJobSpec = (spec: ServiceSpec): boolean => spec.mode === 'replicatedJob' || spec.mode === 'globalJob';

/**
 * What a create or update should tell the user about a spec it accepted (Docker's API carries
 * such warnings too). Ports published in ingress mode (Docker's default) are allocated, but shoal
 * has no routing mesh yet (Docker builds it with IPVS, which this project cannot rely on), so no
 * node listens on them: say so rather than let the port look published.
 */
export function serviceWarnings(spec: ServiceSpec | null | undefined): string[] {
  return (spec?.endpoint?.ports ?? [])
    .filter((p) => p.publishMode === 'INGRESS')
    .map((p) => {
      const port = `${p.publishedPort || '(any)'}:${p.targetPort}/${p.protocol.toLowerCase()}`;
      return `warning: port ${port} is published in ingress mode, but shoal has no routing mesh yet: no node listens on it; publish it with mode=host (--publish published=${p.publishedPort || 0},target=${p.targetPort},mode=host) to reach the task on its node`;
    });
}

export async function createService(ctx: ControlContext, req: Pick<CreateServiceRequest, 'spec'>): Promise<Service> {
  const given = req.spec;
  if (!given) throw invalid('service create needs a service spec');
  const id = await translated(() =>
    ctx.store.update((tx) => {
      // A taken name is the first thing to say (before, say, the ports it would share).
      const name = given.annotations?.name ?? '';
      validateServiceName(name);
      const clash = tx.find('services', 'name', name)[0];
      if (clash) throw exists(`service ${name} already exists (${clash.id})`);
      const spec = normalizeServiceSpec(tx, given, '');
      const service = blank(Service, { id: idOf(ctx), spec, specVersion: 0, jobIteration: 0 });
      tx.create('services', service);
      return service.id;
    }),
  );
  return ctx.store.get('services', id)!;
}

export function getService(ctx: ControlContext, ref: string): Service {
  return resolve(ctx.store, 'services', ref);
}

/**
 * Replaces a service's spec, or with `rollback: "previous"` swaps back to the spec before the
 * last update. `version` must be the service's version as the client read it: a service that
 * changed meanwhile is refused, so no one overwrites a change they never saw.
 */
export async function updateService(ctx: ControlContext, req: UpdateServiceRequest): Promise<Service> {
  if (req.rollback !== '' && req.rollback !== 'previous') throw invalid(`invalid rollback ${JSON.stringify(req.rollback)}: the only rollback is "previous"`);
  if (!req.version) throw invalid(`service update of ${req.service} needs the version of the service that was read`);
  if (!req.rollback && !req.spec) throw invalid(`service update of ${req.service} needs the new service spec`);
  const id = await translated(() =>
    ctx.store.update((tx) => {
      const current = resolve(tx, 'services', req.service);
      const name = nameOf(current);
      const version = current.meta?.version ?? 0;
      checkVersionRead(`service ${name}`, req.version, version);
      const updated = copy(Service, current);
      if (req.rollback) {
        if (!current.previousSpec) throw precondition(`service ${name} does not have a previous spec to roll back to`);
        // The previous spec is checked again: a port it publishes may have been taken since.
        updated.spec = normalizeServiceSpec(tx, current.previousSpec, current.id);
        updated.previousSpec = current.spec;
        updated.updateStatus = blank(UpdateStatus, { state: 'ROLLBACK_STARTED', startedAt: nowOf(ctx), message: 'manually requested rollback' });
      } else {
        const spec = normalizeServiceSpec(tx, req.spec!, current.id);
        checkUnchangeable(current.spec, spec, name);
        updated.spec = spec;
        updated.previousSpec = current.spec;
        updated.updateStatus = null;
      }
      // Tasks record the spec version they were made from; the store version read is unique and
      // grows, as swarmkit's spec versions do.
      updated.specVersion = version;
      // A job runs again, from the start, when its spec changes.
      if (isJobSpec(updated.spec!)) updated.jobIteration = current.jobIteration + 1;
      tx.update('services', updated);
      return current.id;
    }),
  );
  return ctx.store.get('services', id)!;
}

/** What an update cannot change: the mode (the orchestrators do not convert) and the name. */
function checkUnchangeable(current: ServiceSpec | null | undefined, next: ServiceSpec, name: string): void {
  const before = current ? (modeOf(current) ?? 'replicated') : undefined;
  const after = next.mode!;
  if (before && before !== after) {
    throw invalid(`service ${name}: changing the mode from ${modeWord(before)} to ${modeWord(after)} is not supported: remove the service and create it again`);
  }
  const newName = next.annotations?.name ?? '';
  if (current?.annotations?.name && newName !== current.annotations.name) {
    throw invalid(`service ${name}: renaming a service is not supported (asked to rename it to ${newName})`);
  }
}

export async function removeService(ctx: ControlContext, ref: string): Promise<void> {
  await translated(() =>
    ctx.store.update((tx) => {
      tx.remove('services', resolve(tx, 'services', ref).id);
    }),
  );
}

const MODE_FILTER: Record<string, ServiceSpec['mode']> = { replicated: 'replicated', global: 'global', 'replicated-job': 'replicatedJob', 'global-job': 'globalJob' };

/** `service ls`: filters id (prefix), name (prefix), label, mode; with each service's task counts. */
export function listServices(ctx: ControlContext, req: Pick<ListServicesRequest, 'filters'>): { services: Service[]; statuses: ServiceStatus[] } {
  const filters = req.filters;
  checkFilters(filters, ['id', 'name', 'label', 'mode']);
  if (filters.mode !== undefined && !(filters.mode in MODE_FILTER)) {
    throw invalid(`invalid filter 'mode=${filters.mode}': expected ${Object.keys(MODE_FILTER).join(', ')}`);
  }
  const services = applyFilters(sortedServices(ctx.store), filters, {
    id: (s, v) => s.id.startsWith(v),
    name: (s, v) => nameOf(s).startsWith(v),
    label: (s, v) => matchesLabel(s.spec?.annotations?.labels, v),
    mode: (s, v) => (s.spec ? (modeOf(s.spec) ?? 'replicated') : undefined) === MODE_FILTER[v],
  });
  return { services, statuses: services.map((s) => serviceStatus(ctx.store, s)) };
}

function sortedServices(view: ReadView): Service[] {
  return view.all('services').sort((a, b) => nameOf(a).localeCompare(nameOf(b)) || a.id.localeCompare(b.id));
}
