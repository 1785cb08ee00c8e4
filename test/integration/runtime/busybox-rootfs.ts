// A minimal root filesystem for runtime tests, made from Debian's static busybox: no image store,
// no network. Applets become symlinks to /bin/busybox, as `busybox --install -s` would make them.
import { execFileSync } from 'node:child_process';
import { copyFile, chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

let applets: string[] | undefined;

function listApplets(): string[] {
  // --list-full prints install paths such as "bin/sh", "usr/bin/id".
  applets ??= execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return applets;
}

export const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '',
].join('\n');

export const GROUP = ['root:x:0:', 'app:x:1000:', 'staff:x:50:app', 'nogroup:x:65534:', ''].join('\n');

export async function makeBusyboxRootfs(dir: string): Promise<string> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'home/app', 'var']) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  for (const applet of listApplets()) {
    if (applet === 'bin/busybox') continue;
    const target = join(dir, applet);
    await mkdir(dirname(target), { recursive: true });
    await symlink('/bin/busybox', target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  await writeFile(join(dir, 'etc/passwd'), PASSWD);
  await writeFile(join(dir, 'etc/group'), GROUP);
  return dir;
}
