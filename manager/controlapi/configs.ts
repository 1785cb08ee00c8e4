// Configs: create, inspect, list, remove — Docker's config objects (swarmkit's controlapi/config.go):
// a name, labels and up to 500 KB of data, immutable once created. Services name them in their
// container spec (`--config`); the dispatcher ships the data with each task, and the agent mounts
// it as a read-only file. Removal is refused while a service uses the config, in Docker's words.
import { Config, ConfigSpec, type Service } from '../../proto/gen/objects.js';
import type { CreateConfigRequest, ListConfigsRequest } from '../../proto/gen/control.js';
import { blank, copy } from '../store/blank.js';
import type { ReadView } from '../store/memory.js';
import { type ControlContext, idOf } from './context.js';
import { exists, invalid, translated } from './errors.js';
import { applyFilters, checkFilters, matchesLabel } from './filters.js';
import { resolve } from './resolve.js';

/** swarmkit's MaxConfigSize as Docker documents it: 500 KB. */
export const MAX_CONFIG_SIZE = 500 * 1024;
/** swarmkit's rule for config (and secret) names. */
const CONFIG_NAME = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;
const MAX_NAME = 64;

const nameOf = (c: Config): string => c.spec?.annotations?.name ?? '';

export function validateConfigSpec(spec: ConfigSpec | null | undefined): asserts spec is ConfigSpec {
  if (!spec) throw invalid('config create needs a config spec');
  const name = spec.annotations?.name ?? '';
  if (!name) throw invalid('a config needs a name');
  if (name.length > MAX_NAME || !CONFIG_NAME.test(name)) {
    throw invalid(`invalid config name ${JSON.stringify(name)}: only ${MAX_NAME} [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]`);
  }
  const size = spec.data.length;
  if (size < 1 || size > MAX_CONFIG_SIZE) {
    throw invalid(`config ${name}: config data must be larger than 0 and at most ${MAX_CONFIG_SIZE} bytes (it has ${size})`);
  }
}

export async function createConfig(ctx: ControlContext, req: Pick<CreateConfigRequest, 'spec'>): Promise<Config> {
  validateConfigSpec(req.spec);
  const spec = copy(ConfigSpec, req.spec);
  const id = await translated(() =>
    ctx.store.update((tx) => {
      const name = spec.annotations!.name;
      const clash = tx.find('configs', 'name', name)[0];
      if (clash) throw exists(`config ${name} already exists (${clash.id})`);
      const config = blank(Config, { id: idOf(ctx), spec });
      tx.create('configs', config);
      return config.id;
    }),
  );
  return ctx.store.get('configs', id)!;
}

export function getConfig(ctx: ControlContext, ref: string): Config {
  return resolve(ctx.store, 'configs', ref);
}

/** `config ls`: filters id (prefix), name (prefix), label, as Docker's. */
export function listConfigs(ctx: ControlContext, req: Pick<ListConfigsRequest, 'filters'>): Config[] {
  checkFilters(req.filters, ['id', 'name', 'label']);
  const all = ctx.store.all('configs').sort((a, b) => nameOf(a).localeCompare(nameOf(b)) || a.id.localeCompare(b.id));
  return applyFilters(all, req.filters, {
    id: (c, v) => c.id.startsWith(v),
    name: (c, v) => nameOf(c).startsWith(v),
    label: (c, v) => matchesLabel(c.spec?.annotations?.labels, v),
  });
}

/** The services whose spec names the config. */
export function servicesUsingConfig(view: ReadView, configId: string): Service[] {
  return view.all('services').filter((s) => (s.spec?.task?.container?.configs ?? []).some((r) => r.configId === configId));
}

/** Refused while a service uses it, with swarmkit's message. */
export async function removeConfig(ctx: ControlContext, ref: string): Promise<void> {
  await translated(() =>
    ctx.store.update((tx) => {
      const config = resolve(tx, 'configs', ref);
      const users = servicesUsingConfig(tx, config.id).map((s) => s.spec?.annotations?.name ?? s.id).sort();
      if (users.length) {
        throw invalid(`config '${nameOf(config)}' is in use by the following ${users.length === 1 ? 'service' : 'services'}: ${users.join(', ')}`);
      }
      tx.remove('configs', config.id);
    }),
  );
}
