// Compose files into one model: each file parsed (YAML, `<<` merge keys), its strings
// interpolated, its list-or-map fields (environment, labels) turned into maps, then the files
// merged in order as `docker stack deploy -c a.yml -c b.yml` merges them: later files override
// scalars and maps key by key, `ports`, `volumes` and a service's `configs` are merged by their target, `command`,
// `entrypoint` and a healthcheck's `test` are replaced, other lists are appended (duplicates dropped).
import { parse, type ScalarTag } from 'yaml';
import { UserError } from '../../util/command.js';
import { interpolateTree, type Env } from './interpolate.js';

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface ComposeFile {
  /** Shown in errors: the path, or `-` for stdin. */
  name: string;
  text: string;
}

/**
 * YAML 1.1's octal integers (`0440`), which Docker's compose loader reads and Compose files use for
 * file modes (`mode: 0440`); YAML 1.2 alone would read 440.
 */
const YAML11_OCTAL: ScalarTag = { identify: () => false, default: true, tag: 'tag:yaml.org,2002:int', format: 'OCT', test: /^0[0-7]+$/, resolve: (s) => parseInt(s, 8) };

/** One file: parsed, checked to be a mapping, interpolated and normalized. */
export function parseComposeFile(file: ComposeFile, env: Env): Obj {
  let doc: unknown;
  try {
    doc = parse(file.text, { merge: true, customTags: (tags) => [YAML11_OCTAL, ...tags] });
  } catch (e) {
    throw new UserError(`${file.name}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (!isObj(doc)) throw new UserError(`${file.name}: top-level object must be a mapping`);
  for (const section of ['services', 'networks', 'volumes', 'secrets', 'configs']) {
    const v = doc[section];
    if (v !== undefined && v !== null && !isObj(v)) throw new UserError(`${file.name}: ${section} must be a mapping`);
  }
  const interpolated = interpolateTree(doc, env) as Obj;
  const services = interpolated.services;
  if (isObj(services)) {
    for (const [name, svc] of Object.entries(services)) {
      if (svc === null) services[name] = {};
      else if (!isObj(svc)) throw new UserError(`${file.name}: service ${name} must be a mapping`);
      else normalizeService(svc, `${file.name}: services.${name}`);
    }
  }
  return interpolated;
}

/** `[A=1, B]` or `{A: 1, B: null}` as a map of strings (null: no value given). */
export function listOrMap(v: unknown, where: string, sep = '='): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (v === undefined || v === null) return out;
  if (Array.isArray(v)) {
    for (const e of v) {
      if (typeof e !== 'string') throw new UserError(`${where}: expected "KEY${sep}VALUE" strings, got ${JSON.stringify(e)}`);
      const at = e.indexOf(sep);
      out[at < 0 ? e : e.slice(0, at)] = at < 0 ? null : e.slice(at + 1);
    }
    return out;
  }
  if (!isObj(v)) throw new UserError(`${where}: expected a list or a mapping, got ${JSON.stringify(v)}`);
  for (const [k, val] of Object.entries(v)) {
    if (val !== null && typeof val === 'object') throw new UserError(`${where}.${k}: expected a string, number or boolean, got ${JSON.stringify(val)}`);
    out[k] = val === null ? null : String(val);
  }
  return out;
}

function normalizeService(svc: Obj, where: string): void {
  if (svc.environment !== undefined) svc.environment = listOrMap(svc.environment, `${where}.environment`);
  if (svc.labels !== undefined) svc.labels = listOrMap(svc.labels, `${where}.labels`);
  if (isObj(svc.deploy) && svc.deploy.labels !== undefined) svc.deploy.labels = listOrMap(svc.deploy.labels, `${where}.deploy.labels`);
  if (svc.env_file !== undefined && !Array.isArray(svc.env_file)) svc.env_file = [svc.env_file];
  if (svc.networks !== undefined && Array.isArray(svc.networks)) {
    svc.networks = Object.fromEntries(svc.networks.map((n) => [String(n), null]));
  }
}

/** What identifies an entry of a list merged by key, or undefined for lists appended. */
const MERGE_KEYS: Record<string, (v: unknown) => string> = {
  ports: (p) => (isObj(p) ? `${String(p.published ?? '')}:${String(p.target)}/${String(p.protocol ?? 'tcp')}` : normalizePortKey(String(p))),
  volumes: (v) => (isObj(v) ? String(v.target) : (String(v).split(':')[1] ?? String(v))),
  // A service's configs by where they are mounted (the short syntax mounts at /SOURCE).
  configs: (c) => {
    const target = isObj(c) ? String(c.target ?? c.source) : String(c);
    return target.startsWith('/') ? target : `/${target}`;
  },
};

function normalizePortKey(p: string): string {
  return p.includes('/') ? p : `${p.includes(':') ? '' : ':'}${p}/tcp`;
}

/** Lists a later file replaces whole. */
const REPLACED = new Set(['command', 'entrypoint', 'test', 'dns', 'dns_search']);

function mergeValue(key: string, base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = mergeValue(k, base[k], v);
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over) && !REPLACED.has(key)) {
    const keyOf = MERGE_KEYS[key];
    if (keyOf) {
      const byKey = new Map<string, unknown>(base.map((e) => [keyOf(e), e]));
      for (const e of over) byKey.set(keyOf(e), e);
      return [...byKey.values()];
    }
    const seen = new Set(base.map((e) => JSON.stringify(e)));
    return [...base, ...over.filter((e) => !seen.has(JSON.stringify(e)))];
  }
  return over;
}

/** Files merged in order (the later overrides the earlier). */
export function mergeComposeFiles(docs: readonly Obj[]): Obj {
  let out: Obj = {};
  for (const d of docs) out = mergeValue('', out, d) as Obj;
  return out;
}

/** Reads, interpolates and merges the files given with -c, in order. */
export function loadCompose(files: readonly ComposeFile[], env: Env): Obj {
  if (!files.length) throw new UserError('please specify a Compose file (with --compose-file)');
  return mergeComposeFiles(files.map((f) => parseComposeFile(f, env)));
}
