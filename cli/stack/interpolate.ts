// Compose's variable interpolation, applied to every string value of a parsed file (never to
// keys): `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
// `${VAR:?error}` / `${VAR?error}` (required), `${VAR:+alt}` / `${VAR+alt}`, and `$$` for a
// literal `$`. Defaults may themselves hold variables. Errors name where the value sits.
import { UserError } from '../../util/command.js';

export type Env = Record<string, string | undefined>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** The text with its variables substituted; `where` names the value in errors (`services.web.image`). */
export function interpolateString(text: string, env: Env, where: string): string {
  let out = '';
  let i = 0;
  const bad = () => new UserError(`invalid interpolation format for ${where}: "${text}"; you may need to escape any $ with another $`);
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = closingBrace(text, i + 2);
      if (end < 0) throw bad();
      out += substitute(text.slice(i + 2, end), env, where, bad);
      i = end + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (!m) throw bad();
    out += env[m[0]] ?? '';
    i += 1 + m[0].length;
  }
  return out;
}

/** The index of the `}` closing a `${` whose body starts at `from`, nested `${…}` skipped. */
function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let j = from; j < text.length; j++) {
    if (text[j] === '$' && text[j + 1] === '{') {
      depth++;
      j++;
    } else if (text[j] === '}' && --depth === 0) return j;
  }
  return -1;
}

function substitute(body: string, env: Env, where: string, bad: () => UserError): string {
  const m = NAME.exec(body);
  if (!m) throw bad();
  const name = m[0];
  const rest = body.slice(name.length);
  const value = env[name];
  if (rest === '') return value ?? '';
  const op = /^(:?[-?+])/.exec(rest);
  if (!op) throw bad();
  const arg = () => interpolateString(rest.slice(op[1]!.length), env, where);
  const colon = op[1]!.startsWith(':');
  const missing = colon ? !value : value === undefined;
  switch (op[1]!.at(-1)) {
    case '-':
      return missing ? arg() : value!;
    case '+':
      return missing ? '' : arg();
    default: {
      if (!missing) return value!;
      const why = arg();
      throw new UserError(`required variable ${name} is missing a value${why ? `: ${why}` : ''} (in ${where})`);
    }
  }
}

/** Every string of a parsed YAML tree interpolated (a new tree); keys are left alone. */
export function interpolateTree(node: unknown, env: Env, where = ''): unknown {
  if (typeof node === 'string') return interpolateString(node, env, where || 'the file');
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, env, `${where}[${i}]`));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateTree(v, env, where ? `${where}.${k}` : k);
    return out;
  }
  return node;
}
