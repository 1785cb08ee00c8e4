// The mount table, read from /proc/self/mountinfo, and unmounting by the `umount` tool (Node has
// no umount). The lab's mounts are namespace files bind-mounted onto /run/netns/LAB-* and onto
// files under /run/shoal-lab/LAB/.
import { readFileSync } from 'node:fs';
import { run, runQuiet } from './run.js';

/** Mount points, in mount order. */
export function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const points: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined) points.push(unescapeMountPath(field));
  }
  return points;
}

/** Mount points that are `dir` itself or below it, deepest (latest) first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  return mountPoints()
    .filter((p) => p === dir || p.startsWith(prefix))
    .reverse();
}

export function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

/**
 * Unmounts `path` until nothing is mounted there (a path can carry stacked mounts). A plain
 * unmount first; a lazy one if that fails (busy), which still removes it from the table.
 */
export async function unmountAll(path: string): Promise<void> {
  for (let i = 0; i < 16 && isMountPoint(path); i++) {
    const r = await runQuiet(['umount', path]);
    if (r.code !== 0) await run(['umount', '-l', path]);
  }
}

function unescapeMountPath(field: string): string {
  // mountinfo escapes space, tab, newline and backslash as \ooo octal.
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
