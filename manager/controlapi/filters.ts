// Docker's --filter for the list calls: a map of filter name to value (one value a name). Each
// list names the filters it takes; any other name is refused, as Docker does, so a typo is not
// silently "no filter".
import { invalid } from './errors.js';

export type Filters = Record<string, string>;

/** Refuses filter names outside `allowed`, naming the bad one and the valid ones. */
export function checkFilters(filters: Filters, allowed: readonly string[]): void {
  for (const key of Object.keys(filters)) {
    if (!allowed.includes(key)) throw invalid(`invalid filter '${key}': valid filters are ${allowed.join(', ')}`);
  }
}

/** `label=KEY` matches objects that have the label, `label=KEY=VALUE` those with that value. */
export function matchesLabel(labels: Record<string, string> | undefined, expression: string): boolean {
  const eq = expression.indexOf('=');
  const key = eq < 0 ? expression : expression.slice(0, eq);
  if (!labels || !(key in labels)) return false;
  return eq < 0 || labels[key] === expression.slice(eq + 1);
}

/** Applies the filters that are present: each test runs only when its filter was given. */
export function applyFilters<T>(objects: readonly T[], filters: Filters, tests: Record<string, (o: T, value: string) => boolean>): T[] {
  const active = Object.entries(filters).filter(([key]) => tests[key] !== undefined);
  if (active.length === 0) return [...objects];
  return objects.filter((o) => active.every(([key, value]) => tests[key]!(o, value)));
}
