// `npm run bench -- NAME [ARGS...]`: runs one benchmark. Each prints one JSON object a line as it
// measures, and a summary object last (with `"summary": true`), with a baseline measured in the
// same run where one exists, so results are compared on the same machine under the same load.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface Benchmark {
  description: string;
  run(args: string[], emit: (record: Record<string, unknown>) => void): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .map((f) => f.replace(/\.bench\.js$/, ''))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`${name ? `unknown benchmark "${name}"` : 'no benchmark named'}; available: ${available.join(', ') || '(none)'}\n`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(join(here, `${name}.bench.js`)).href)) as { default: Benchmark };
await mod.default.run(args, (record) => process.stdout.write(JSON.stringify({ bench: name, ...record }) + '\n'));
