// Docker-style flag parsing: `--name value`, `--name=value`, `-n value`, bundled short booleans
// (`-it`), repeatable flags (`-e A=1 -e B=2`), and `--` ending the flags. Errors name the flag
// and the bad value, and never print a stack trace.

export type FlagKind = 'bool' | 'string' | 'int' | 'list';

export interface FlagSpec {
  name: string;
  short?: string;
  kind: FlagKind;
  description: string;
  default?: string | number | boolean;
  /** Shown in help as the value's placeholder, e.g. `--token string`. */
  valueName?: string;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Parsed {
  flags: FlagValues;
  args: string[];
}

/**
 * Parses argv against the specs. Positional arguments and flags may interleave, as in Docker;
 * with `stopAtFirstArg`, everything from the first positional argument on is left alone (for
 * commands like `exec TASK CMD --flag` whose tail belongs to someone else).
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], stopAtFirstArg = false): Parsed {
  const byName = new Map<string, FlagSpec>();
  const byShort = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    if (s.short) byShort.set(s.short, s);
  }
  const flags: FlagValues = {};
  for (const s of specs) {
    if (s.kind === 'list') flags[s.name] = [];
    else if (s.default !== undefined) flags[s.name] = s.default;
    else if (s.kind === 'bool') flags[s.name] = false;
  }
  const args: string[] = [];
  const set = (spec: FlagSpec, raw: string | undefined, shown: string): void => {
    if (spec.kind === 'bool') {
      if (raw === undefined || raw === 'true') flags[spec.name] = true;
      else if (raw === 'false') flags[spec.name] = false;
      else throw new UsageError(`invalid argument "${raw}" for "${shown}" flag: expected true or false`);
      return;
    }
    if (raw === undefined) throw new UsageError(`flag needs an argument: ${shown}`);
    if (spec.kind === 'int') {
      if (!/^-?\d+$/.test(raw)) throw new UsageError(`invalid argument "${raw}" for "${shown}" flag: expected an integer`);
      flags[spec.name] = Number(raw);
    } else if (spec.kind === 'list') {
      (flags[spec.name] as string[]).push(raw);
    } else {
      flags[spec.name] = raw;
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
      let raw: string | undefined = eq >= 0 ? a.slice(eq + 1) : undefined;
      if (raw === undefined && spec.kind !== 'bool') raw = argv[++i];
      set(spec, raw, `--${name}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) {
      // -abc: booleans bundled; the last one may take a value (-n3 or -n 3)
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const spec = byShort.get(c);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${c}' in ${a}`);
        if (spec.kind === 'bool') {
          set(spec, undefined, `-${c}`);
          continue;
        }
        let raw: string | undefined = a.slice(j + 1);
        if (raw.startsWith('=')) raw = raw.slice(1);
        if (raw === '') raw = argv[++i];
        set(spec, raw, `-${c}`);
        break;
      }
      continue;
    }
    if (stopAtFirstArg) {
      args.push(...argv.slice(i));
      break;
    }
    args.push(a);
  }
  return { flags, args };
}

/** Help text for a flag list, aligned like Docker's `Options:` block. */
export function formatFlags(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const value = s.kind === 'bool' ? '' : ` ${s.valueName ?? (s.kind === 'int' ? 'int' : s.kind === 'list' ? 'list' : 'string')}`;
    const left = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${value}`;
    const def = s.default !== undefined && s.default !== false && s.default !== '' ? ` (default ${JSON.stringify(s.default)})` : '';
    return [left, s.description + def] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}   ${r}`).join('\n');
}
