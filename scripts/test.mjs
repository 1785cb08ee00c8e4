#!/usr/bin/env node
// The whole test suite, in the order that fails fastest: type-check, lint, then every test file
// under dist/test (unit, integration, lab, raft simulation) through Node's own runner.
// Usage: node scripts/test.mjs [--only PATTERN] [--skip-static]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
const skipStatic = argv.includes('--skip-static');

function run(cmd, args) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args[0] ?? ''} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

run('node', ['proto/gen.mjs']);
run('npx', ['tsc', '-p', 'tsconfig.json']);
if (!skipStatic) run('npx', ['eslint', '.']);
// The CLI reference is generated from the commands' help: a stale one fails here.
if (!skipStatic) run('node', ['scripts/cli-reference.mjs', '--check']);
let files = testFiles(join(repo, 'dist', 'test'));
if (only) files = files.filter((f) => f.includes(only));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// Lab tests build network namespaces and run daemons: they each use a lab of their own name, so
// files may run side by side; two at a time suits these 2-core machines.
run('node', ['--test', '--test-concurrency=2', ...files]);
