// One place for the version string both binaries print: read from package.json at run time, so a
// release bumps one file.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

function findPackageJson(): string {
  // Compiled files live in dist/<folder>/, sources in <folder>/: walk up until package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    try {
      readFileSync(candidate);
      return candidate;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
}

export const version: string = (JSON.parse(readFileSync(findPackageJson(), 'utf8')) as { version: string }).version;
