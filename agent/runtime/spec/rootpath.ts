// Resolving a path inside a container's root filesystem without following symlinks out of it: an
// image may ship /etc/passwd as a symlink to /host/etc/passwd or ../../.., and reading the host's
// file instead would be both wrong and a leak. Absolute links restart at the root, `..` stops there.
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';

const MAX_LINKS = 40;

export async function resolveInRoot(root: string, path: string): Promise<string> {
  let pending = path.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = join(root, ...done, part);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch {
      // A missing component: the rest cannot be links either.
      done.push(part, ...pending.filter((p) => p !== '..'));
      break;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new Error(`too many symlinks resolving ${path} in ${root}`);
    const target = await readlink(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return join(root, ...done);
}
