// Docker's ways to name an object on the command line, for every table: the full id, the name
// (a service's, network's or config's name, a node's hostname, a task's full name `web.1.<id>`), or a
// prefix of the id that only one object has. An exact id wins over a name, and a name over a
// prefix, as in Docker.
import type { ReadView } from '../store/memory.js';
import { KIND, type ObjectTypes } from '../store/tables.js';
import { invalid, notFound } from './errors.js';

type Named = 'nodes' | 'services' | 'networks' | 'tasks' | 'configs';

/** The names each table's objects answer to, and the index that finds them, if there is one. */
const NAMES: { [K in Named]: { names: (o: ObjectTypes[K]) => string[]; index?: string } } = {
  nodes: { names: (n) => [n.description?.hostname ?? ''], index: 'hostname' },
  services: { names: (s) => [s.spec?.annotations?.name ?? ''], index: 'name' },
  networks: { names: (n) => [n.spec?.annotations?.name ?? ''], index: 'name' },
  tasks: { names: (t) => (t.annotations?.name ? [`${t.annotations.name}.${t.id}`] : []) },
  configs: { names: (c) => [c.spec?.annotations?.name ?? ''], index: 'name' },
};

/** The one object `ref` names in `table`; NOT_FOUND or INVALID_ARGUMENT (ambiguous) otherwise. */
export function resolve<K extends Named>(view: ReadView, table: K, ref: string): ObjectTypes[K] {
  const found = lookup(view, table, ref);
  if (!found) throw notFound(`${KIND[table]} ${ref} not found`);
  return found;
}

/** Like resolve, but undefined when nothing matches (an ambiguous or empty reference still throws). */
export function lookup<K extends Named>(view: ReadView, table: K, ref: string): ObjectTypes[K] | undefined {
  const kind = KIND[table];
  if (!ref) throw invalid(`a ${kind} id or name is required`);
  const byId = view.get(table, ref);
  if (byId) return byId;
  const { names, index } = NAMES[table] as { names: (o: ObjectTypes[K]) => string[]; index?: string };
  const byName = index ? view.find(table, index, ref) : view.all(table).filter((o) => names(o).includes(ref));
  return (
    single(byName, kind, ref) ??
    single(
      view.all(table).filter((o) => o.id.startsWith(ref)),
      kind,
      ref,
    )
  );
}

function single<T>(matches: T[], kind: string, ref: string): T | undefined {
  if (matches.length > 1) throw invalid(`${kind} ${ref} is ambiguous (${matches.length} matches found)`);
  return matches[0];
}

/** "web (id)": how messages name an object the user may know by either. */
export function label(name: string | undefined, id: string): string {
  return name && name !== id ? `${name} (${id})` : id;
}
