// Log rotation for conmon's k8s-file logs, done by the agent. conmon's own --log-size-max cannot
// keep old files: it replaces the log with an empty one when the limit is hit, and its byte counter
// is not reset by a reopen, so it would fight any rotation done from outside. Instead the agent
// watches the size and, past max-size, renames log → log.1 (shifting log.1 → log.2 …, dropping the
// oldest so at most max-file files exist) and asks conmon through its control fifo (`<bundle>/ctl`,
// message type 2) to reopen the log path. Lines written between the rename and the reopen land at
// the end of log.1, so nothing is lost and order is kept. While no agent runs, logs grow unbounded.
// max-file 1 means: drop the old content at max-size (what was written during the swap goes too).
import { constants } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';

export const REOPEN_LOGS_MESSAGE = '2 0 0\n';

export function rotatedPath(logPath: string, n: number): string {
  return `${logPath}.${n}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens conmon's control fifo for writing; undefined when no conmon reads it. O_NONBLOCK: opening a
 * fifo nobody reads fails with ENXIO instead of blocking forever.
 */
async function openControl(ctlPath: string): Promise<FileHandle | undefined> {
  try {
    return await open(ctlPath, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
}

/** Sends conmon the reopen message; false when no conmon is reading the fifo. */
export async function requestReopen(ctlPath: string): Promise<boolean> {
  const fh = await openControl(ctlPath);
  if (!fh) return false;
  try {
    await fh.write(REOPEN_LOGS_MESSAGE);
    return true;
  } finally {
    await fh.close();
  }
}

/**
 * Rotates when the live file has reached maxSizeBytes. The control fifo is opened before anything
 * is renamed: with no conmon to reopen the log nothing is touched, so the live file never vanishes.
 */
export async function rotateIfNeeded(logPath: string, ctlPath: string, maxSizeBytes: number, maxFiles: number): Promise<boolean> {
  if (maxSizeBytes <= 0) return false;
  let size: number;
  try {
    size = (await stat(logPath)).size;
  } catch {
    return false;
  }
  if (size < maxSizeBytes) return false;
  const ctl = await openControl(ctlPath);
  if (!ctl) return false;
  try {
    const keep = Math.max(1, maxFiles) - 1; // rotated files kept besides the live one
    if (keep === 0) {
      const doomed = `${logPath}.rotating`;
      await rename(logPath, doomed);
      await ctl.write(REOPEN_LOGS_MESSAGE);
      await unlink(doomed);
      return true;
    }
    if (await exists(rotatedPath(logPath, keep))) await unlink(rotatedPath(logPath, keep));
    for (let n = keep - 1; n >= 1; n--) {
      if (await exists(rotatedPath(logPath, n))) await rename(rotatedPath(logPath, n), rotatedPath(logPath, n + 1));
    }
    await rename(logPath, rotatedPath(logPath, 1));
    await ctl.write(REOPEN_LOGS_MESSAGE);
    return true;
  } finally {
    await ctl.close();
  }
}

/** The files holding a log, oldest first: log.N … log.1, log. */
export async function logFiles(logPath: string): Promise<string[]> {
  const rotated: string[] = [];
  for (let n = 1; n < 1000 && (await exists(rotatedPath(logPath, n))); n++) rotated.push(rotatedPath(logPath, n));
  return [...rotated.reverse(), logPath];
}
