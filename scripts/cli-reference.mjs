// Writes docs/cli.md: the CLI reference, generated from the commands' own help (util/command.ts's
// helpText over cli/root.ts's tree), so the reference and `shoal CMD --help` never disagree.
// Run after the build: `node scripts/cli-reference.mjs` (`--check` fails if docs/cli.md is stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { root } = await import(`${repo}dist/cli/root.js`);
const { helpText } = await import(`${repo}dist/util/command.js`);

const sections = [];
const walk = (cmd, path) => {
  sections.push({ path, text: helpText(cmd, path) });
  for (const sub of cmd.subcommands ?? []) walk(sub, [...path, sub.name]);
};
walk(root, ['shoal']);
const md = [
  '# shoal CLI reference',
  '',
  'Generated from the commands\' own help by `node scripts/cli-reference.mjs`; do not edit by hand.',
  '',
  ...sections.map((s) => [`## ${s.path.join(' ')}`, '', '```', s.text.trimEnd(), '```', ''].join('\n')),
].join('\n');
const file = `${repo}docs/cli.md`;
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing: stale
  }
  if (current !== md) {
    process.stderr.write('docs/cli.md is out of date: run node scripts/cli-reference.mjs\n');
    process.exit(1);
  }
} else {
  writeFileSync(file, md);
  process.stdout.write(`wrote ${file} (${sections.length} commands)\n`);
}
