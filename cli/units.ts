// The value syntaxes Docker's CLI accepts and prints, so flags and output read the same as with
// `docker`: Go durations (`10s`, `1m30s`, `500ms`), memory sizes (`512M`, `1g`, binary units),
// CPUs as decimals (`0.5` → 500000000 nano CPUs), and go-units' human durations ("2 minutes").
// Parsers throw ValueError with the reason only; callers add the flag and the value.

export class ValueError extends Error {
  override name = 'ValueError';
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds (rounded to whole ms, the unit of shoal's specs). */
export function parseDuration(text: string): number {
  const bad = () => new ValueError(`time: invalid duration ${JSON.stringify(text)}`);
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw bad();
  let total = 0;
  const re = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length) {
    const m = re.exec(s);
    if (!m) throw bad();
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return sign * Math.round(total);
}

/** Go's Duration.String for a whole number of milliseconds: `0s`, `500ms`, `5s`, `1m30s`, `1h0m0s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 0) return '-' + formatDuration(-ms);
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = `${(ms % 60_000) / 1000}s`;
  if (h) return `${h}h${m}m${s}`;
  if (m) return `${m}m${s}`;
  return s;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** go-units' RAMInBytes: `512`, `512k`, `512M`, `1.5g`, `1GiB`, `2 GB` (binary multiples, as Docker). */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  if (!m || Number.isNaN(n)) throw new ValueError(`invalid size: '${text}'`);
  return Math.trunc(n * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
}

/** go-units' BytesSize: `512MiB`, `1.5GiB`, `100B` (4 significant digits). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let size = bytes;
  let i = 0;
  while (size >= 1024 && i < units.length - 1) {
    size /= 1024;
    i++;
  }
  return `${Number(size.toPrecision(4))}${units[i]}`;
}

/** Docker's ParseCPUs: a decimal number of CPUs as an exact count of nano CPUs. */
export function parseNanoCpus(text: string): number {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m || (m[1] === '' && !m[2])) throw new ValueError(`failed to parse ${text} as a rational number`);
  const frac = (m[2] ?? '').replace(/0+$/, '');
  if (frac.length > 9) throw new ValueError('value is too precise');
  return Number(m[1] || '0') * 1e9 + Number(frac.padEnd(9, '0'));
}

/** Nano CPUs as the decimal a user would type: 1500000000 → `1.5`. */
export function formatCpus(nano: number): string {
  return String(nano / 1e9);
}

/** go-units' HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/**
 * Splits a command line into words like a POSIX shell (go-shlex, as Docker's --entrypoint):
 * quotes group, backslashes escape, nothing is expanded.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) word += text[++i];
      else word += c;
      continue;
    }
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    word ??= '';
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\') {
      if (i + 1 >= text.length) throw new ValueError('EOF found after escape character');
      word += text[++i];
    } else word += c;
  }
  if (quote) throw new ValueError('EOF found when expecting closing quote');
  if (word !== null) words.push(word);
  return words;
}
