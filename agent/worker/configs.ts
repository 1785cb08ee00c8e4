// A task's configs on this node: the data the dispatcher sent with each config reference is written
// to `<dir>/<task id>/<n>` (mode and owner as the reference asks) and bind-mounted read-only at the
// reference's target, as Docker mounts configs. The files go when the task's container does.
import { chown, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { Task } from '../../proto/gen/objects.js';
import type { MountSpec } from '../runtime/runtime.js';
import { SpecRejectedError } from './containerspec.js';

/** Docker's default file mode for a config. */
const DEFAULT_MODE = 0o444;

const taskDir = (dir: string, taskId: string): string => join(dir, taskId);

/** `<data dir>/configs`, beside the worker's `<data dir>/rootfs` (the controller knows only the latter). */
export const configsDirBeside = (rootfsDir: string): string => join(dirname(rootfsDir), 'configs');

/**
 * Writes the task's config files under `dir` and returns their mounts (none when the task has no
 * configs). A reference without data (the config was removed before the task got here) or without
 * an absolute target rejects the task, naming the config.
 */
export async function writeTaskConfigs(dir: string, task: Task): Promise<MountSpec[]> {
  const refs = task.spec?.container?.configs ?? [];
  if (refs.length === 0) return [];
  const base = taskDir(dir, task.id);
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true, mode: 0o700 });
  const mounts: MountSpec[] = [];
  for (const [i, r] of refs.entries()) {
    const which = r.configName || r.configId;
    const target = r.file?.name ?? '';
    if (!isAbsolute(target)) throw new SpecRejectedError(`config ${which}: target "${target}" must be an absolute path`);
    const data = r.data ?? new Uint8Array(0);
    if (data.length === 0) throw new SpecRejectedError(`config ${which} (${r.configId}) has no data on this node: it may have been removed`);
    const path = join(base, String(i));
    await writeFile(path, data);
    await chmod(path, r.file?.mode || DEFAULT_MODE);
    await chown(path, Number(r.file?.uid || 0), Number(r.file?.gid || 0));
    mounts.push({ type: 'bind', source: path, target, readOnly: true });
  }
  return mounts;
}

/** Removes the task's config files (nothing if it had none). */
export async function removeTaskConfigs(dir: string, taskId: string): Promise<void> {
  await rm(taskDir(dir, taskId), { recursive: true, force: true });
}
