// The two commands as users run them: through bin/, as setup.sh links them onto PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
const run = (bin: string, ...args: string[]) => spawnSync(join(repo, 'bin', bin), args, { encoding: 'utf8' });

for (const bin of ['shoal', 'shoald']) {
  test(`${bin} --version prints the package version`, () => {
    const r = run(bin, '--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `${bin} version ${pkg.version}\n`);
  });

  test(`${bin} --help prints usage and options`, () => {
    const r = run(bin, '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, new RegExp(`^Usage:\\s+${bin}`));
    assert.match(r.stdout, /--version/);
  });

  test(`${bin} refuses an unknown flag, naming it, without a stack trace`, () => {
    const r = run(bin, '--no-such-flag');
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'Error: unknown flag: --no-such-flag\n');
  });
}
