// hosts.json: the lab's record of itself, in /run/shoal-lab/LAB/. Written before `up` makes
// anything and updated as it goes, so `down` knows what to clean even after a crash. Readable by
// tools (jq) as well: it carries the full layout. Later work adds per-host fields (daemon pid,
// state) to `hosts`.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LabLayout } from './layout.js';
import type { NamespaceId } from './procs.js';

export const STATE_VERSION = 1;

export interface LabState {
  version: number;
  /** `building` while `up` runs; `ready` when it finished. */
  status: 'building' | 'ready';
  /** The `up` process, identified by pid and start time, so a reused pid is not mistaken for it. */
  builder: { pid: number; startTime: number | undefined };
  createdAt: string;
  /** Every namespace made so far, by path: kept so `down` finds their processes even when a bind mount is gone. */
  namespaces: Record<string, NamespaceId>;
  layout: LabLayout;
}

/** The state at `file`, undefined when there is none. A damaged file counts as none (down still cleans by name). */
export function readState(file: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const s = JSON.parse(text) as LabState;
    return s.version === STATE_VERSION && s.layout && Array.isArray(s.layout.hosts) ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Atomic: readers see the old or the new file, never half of one. */
export function writeState(file: string, state: LabState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, file);
}
