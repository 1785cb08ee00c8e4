// Docker's `-f/--filter key=value` for listings. Keys are checked here, so a typo is refused with
// Docker's message before anything is sent; the map goes to the manager, and listings also apply
// it themselves so the output is right whatever the manager filters.
import { UserError } from '../util/command.js';

export function parseFilters(values: readonly string[], allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UserError(`bad format of filter "${v}" (expected name=value)`);
    const key = v.slice(0, eq).trim().toLowerCase();
    if (!allowed.includes(key)) throw new UserError(`invalid filter '${key}': expected one of ${allowed.join(', ')}`);
    if (key in out) throw new UserError(`filter '${key}' given twice ("${out[key]}" and "${v.slice(eq + 1)}"): one value per key`);
    out[key] = v.slice(eq + 1);
  }
  return out;
}

/** `label=KEY` (present) or `label=KEY=VALUE` (equal) against a label map. */
export function labelMatches(labels: Record<string, string> | undefined, filter: string): boolean {
  const eq = filter.indexOf('=');
  const key = eq < 0 ? filter : filter.slice(0, eq);
  if (!labels || !(key in labels)) return false;
  return eq < 0 || labels[key] === filter.slice(eq + 1);
}
