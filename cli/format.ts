// Output the way `docker` prints it, because users' scripts parse it: aligned tables by default,
// `--format json`, and Go-template-style formats (`'{{.Hostname}} {{.Status}}'`,
// `'table {{.ID}}\t{{.Hostname}}'`). The template language is the subset Docker users write:
// field chains, `json`, `upper`, `lower`, `title`, `join`, `index`, `truncate`, `printf "%s"`, and
// pipes (`{{.Name | upper}}`).

export type Row = Record<string, unknown>;

export class FormatError extends Error {
  override name = 'FormatError';
  readonly userError = true;
}

/** Column headers for a listing: field name → header text (`ManagerStatus` → `MANAGER STATUS`). */
export type Headers = Record<string, string>;

type Token = { kind: 'text'; text: string } | { kind: 'action'; expr: string };

function tokenize(template: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) {
      out.push({ kind: 'text', text: template.slice(i) });
      break;
    }
    if (open > i) out.push({ kind: 'text', text: template.slice(i, open) });
    const close = template.indexOf('}}', open);
    if (close < 0) throw new FormatError(`template: unclosed action in ${JSON.stringify(template)}`);
    out.push({ kind: 'action', expr: template.slice(open + 2, close).trim() });
    i = close + 2;
  }
  return out;
}

function splitArgs(expr: string): string[] {
  const args: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m; (m = re.exec(expr)); ) args.push(m[1] !== undefined ? JSON.stringify(JSON.parse(`"${m[1]}"`)) : m[2]!);
  return args;
}

function lookup(value: unknown, path: string, expr: string): unknown {
  if (path === '.') return value;
  let cur: unknown = value;
  for (const key of path.slice(1).split('.')) {
    if (cur == null || typeof cur !== 'object') return undefined;
    if (!(key in (cur as object))) throw new FormatError(`template: can't evaluate field ${key} in ${JSON.stringify(expr)}`);
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function show(v: unknown): string {
  if (v == null) return '<no value>';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.entries(v as object).map(([k, x]) => `${k}:${show(x)}`).join(' ')}]`;
  return String(v);
}

const FUNCS: Record<string, (args: unknown[]) => unknown> = {
  json: ([v]) => JSON.stringify(v ?? null),
  upper: ([v]) => show(v).toUpperCase(),
  lower: ([v]) => show(v).toLowerCase(),
  title: ([v]) => show(v).replace(/\b\w/g, (c) => c.toUpperCase()),
  join: ([list, sep]) => (Array.isArray(list) ? list.map(show).join(String(sep ?? '')) : show(list)),
  index: ([m, k]) => (m && typeof m === 'object' ? (m as Record<string, unknown>)[String(k)] : undefined),
  truncate: ([v, n]) => show(v).slice(0, Number(n)),
  printf: ([fmt, ...rest]) => {
    let i = 0;
    return String(fmt).replace(/%[sdv]/g, () => show(rest[i++]));
  },
  println: (args) => args.map(show).join(' ') + '\n',
};

function evalCommand(words: string[], dot: unknown, piped: unknown[], expr: string): unknown {
  const value = (w: string): unknown => {
    if (w.startsWith('"')) return JSON.parse(w) as string;
    if (/^-?\d+$/.test(w)) return Number(w);
    if (w.startsWith('.')) return lookup(dot, w, expr);
    throw new FormatError(`template: function "${w}" not defined in ${JSON.stringify(expr)}`);
  };
  const [head, ...rest] = words;
  if (head === undefined) throw new FormatError(`template: empty command in ${JSON.stringify(expr)}`);
  if (head in FUNCS) return FUNCS[head]!([...rest.map(value), ...piped]);
  if (!head.startsWith('.') && !head.startsWith('"') && !/^-?\d+$/.test(head)) throw new FormatError(`template: function "${head}" not defined in ${JSON.stringify(expr)}`);
  if (rest.length || piped.length) throw new FormatError(`template: can't give argument to non-function ${head} in ${JSON.stringify(expr)}`);
  return value(head);
}

function evalAction(expr: string, dot: unknown): string {
  let piped: unknown[] = [];
  let result: unknown;
  for (const part of expr.split('|')) {
    result = evalCommand(splitArgs(part.trim()), dot, piped, expr);
    piped = [result];
  }
  return show(result);
}

/** Renders one row through a Go-style template. */
export function renderTemplate(template: string, row: unknown): string {
  return tokenize(template)
    .map((t) => (t.kind === 'text' ? t.text : evalAction(t.expr, row)))
    .join('');
}

/**
 * Aligns cells like Go's tabwriter as Docker's formatter configures it (minwidth 10, padding 3):
 * each column is as wide as its widest cell plus 3, and at least 10; the last is not padded.
 */
export function alignTable(lines: string[][]): string {
  const widths: number[] = [];
  for (const cells of lines) cells.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return lines
    .map((cells) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(Math.max(10, widths[i]! + 3)))).join('').trimEnd())
    .map((l) => l + '\n')
    .join('');
}

function unescapeTabs(s: string): string {
  return s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
}

function headerFor(template: string, headers: Headers): string[] {
  // The header of `table {{.ID}}\t{{.Hostname}}` is each cell's fields replaced by their headers.
  return template.split('\t').map((cell) =>
    tokenize(cell)
      .map((t) => {
        if (t.kind === 'text') return t.text;
        const field = /^\.(\w+)/.exec(t.expr)?.[1];
        return field ? (headers[field] ?? field.toUpperCase()) : '';
      })
      .join(''),
  );
}

/**
 * Formats a listing. `format` is what the user gave with --format ('' for the default table,
 * 'json', 'table TEMPLATE', or a template); `defaultTable` is the command's own table template.
 */
export function formatRows(rows: Row[], format: string, defaultTable: string, headers: Headers): string {
  const f = unescapeTabs(format || defaultTable);
  if (f === 'json') return rows.map((r) => JSON.stringify(r) + '\n').join('');
  if (f.startsWith('table')) {
    const template = f.slice('table'.length).trim() || unescapeTabs(defaultTable).slice('table'.length).trim();
    const lines = [headerFor(template, headers), ...rows.map((r) => renderTemplate(template, r).split('\t'))];
    return alignTable(lines);
  }
  return rows.map((r) => renderTemplate(f, r) + '\n').join('');
}
