// overlayfs mounts through util-linux's mount(8): node has no mount(2). Lower directories are
// passed relative to a common parent (mount runs with that as its cwd) so that deep images fit
// in the one page of mount options the kernel accepts.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { spawner } from '../spawner.js';

/** util-linux's, by path: the helper shell (busybox) would run its own applet for a bare name. */
const tool = (name: string): string => ['/usr/bin/', '/bin/', '/usr/sbin/', '/sbin/'].map((d) => d + name).find((p) => existsSync(p)) ?? name;
const MOUNT = tool('mount');
const UMOUNT = tool('umount');

export interface OverlayOptions {
  /** Layer directories, topmost first. */
  lowerDirs: readonly string[];
  upperDir: string;
  workDir: string;
  /** Directory the lower paths are given relative to. */
  lowerBase: string;
  readOnly?: boolean;
}

/** The kernel rejects option strings longer than a page. */
const maxOptions = 4095;

export async function mountOverlay(target: string, o: OverlayOptions): Promise<void> {
  for (const p of [...o.lowerDirs, o.upperDir, o.workDir, target]) {
    // ':' and ',' separate overlay options; the store never makes such paths, callers might.
    if (/[:,]/.test(p)) throw new Error(`overlay path ${JSON.stringify(p)} contains ':' or ',', which overlayfs options cannot carry`);
  }
  if (o.lowerDirs.length === 0) throw new Error('overlay mount needs at least one lower directory');
  const lower = o.lowerDirs.map((d) => relative(o.lowerBase, d)).join(':');
  const options = `lowerdir=${lower},upperdir=${o.upperDir},workdir=${o.workDir}${o.readOnly ? ',ro' : ''}`;
  if (options.length > maxOptions) throw new Error(`image has too many layers (${o.lowerDirs.length}) for one overlay mount`);
  // Through the helper shell (agent/runtime/spawner.ts): no fork of the daemon per container.
  const r = await spawner.run(MOUNT, ['-t', 'overlay', 'overlay', '-o', options, target], { cwd: o.lowerBase });
  if (r.code !== 0) throw new Error(`mounting overlay at ${target} failed: ${(r.stderr || `${MOUNT} exited with status ${r.code}`).trim()}`);
}

/** Mount points (decoded from /proc/self/mounts' octal escapes). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))));
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

/** Unmounts if mounted; a lazy detach as a last resort so a busy rootfs never blocks cleanup. */
export async function unmount(target: string): Promise<void> {
  if (!(await isMountPoint(target))) return;
  if ((await spawner.run(UMOUNT, [target])).code === 0) return;
  const lazy = await spawner.run(UMOUNT, ['-l', target]);
  if (lazy.code !== 0) throw new Error(`unmounting ${target} failed: ${lazy.stderr.trim() || `${UMOUNT} exited with status ${lazy.code}`}`);
}
