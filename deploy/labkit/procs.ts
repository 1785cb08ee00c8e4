// Finding and ending the processes that live in a lab's namespaces. A process belongs to the lab
// when its /proc/PID/ns/net or ns/uts is one of the lab's namespaces: compared by (device, inode)
// of the namespace file, which stays the same for the namespace's whole life, even after its
// bind mount is gone.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { UserError } from '../../util/command.js';

/** `dev:ino` of a namespace, as stat() reports it for the namespace file or /proc/PID/ns/*. */
export type NamespaceId = string;

export function namespaceId(path: string): NamespaceId | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** True when `path` is a namespace file (a bind-mounted nsfs inode), not a plain placeholder. */
export function isNamespaceFile(path: string): boolean {
  const own = namespaceId('/proc/self/ns/net');
  const id = namespaceId(path);
  return own !== undefined && id !== undefined && id.split(':')[0] === own.split(':')[0];
}

/** Pids of processes (other than this one) inside any of `ids`. */
export function processesIn(ids: ReadonlySet<NamespaceId>): number[] {
  if (ids.size === 0) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    for (const kind of ['net', 'uts']) {
      // Gone or a zombie (a zombie's namespaces are already released): not ours to kill.
      const id = namespaceId(`/proc/${pid}/ns/${kind}`);
      if (id !== undefined && ids.has(id)) {
        pids.push(pid);
        break;
      }
    }
  }
  return pids;
}

/**
 * SIGKILLs every process in `ids` and waits until none is left. Repeats the scan, since a process
 * may fork between scan and kill. Returns the pids it killed.
 */
export async function killProcessesIn(ids: ReadonlySet<NamespaceId>, timeoutMs = 10_000): Promise<number[]> {
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = processesIn(ids);
    if (pids.length === 0) return [...killed];
    if (Date.now() > deadline) {
      throw new UserError(`processes ${pids.join(', ')} in the lab's namespaces did not die after SIGKILL (${describe(pids)})`);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // already gone
      }
    }
    // Dying takes the kernel a moment (unmapping memory, closing files): poll until it is done.
    await delay(5);
  }
}

/** SIGKILLs one process, known by pid and start time, and waits until it is gone. */
export async function killProcess(pid: number, startTime: number | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  // Gone, or a zombie whose parent has yet to reap it (its start time still reads, its state is Z).
  while (processStartTime(pid) === startTime && !isZombie(pid)) {
    if (Date.now() > deadline) throw new UserError(`process ${pid} did not die after SIGKILL`);
    await delay(5);
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Start time of a process (clock ticks since boot), to tell a live pid from a reused one. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function describe(pids: number[]): string {
  return pids
    .map((pid) => {
      try {
        return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`;
      } catch {
        return `${pid}: gone`;
      }
    })
    .join('; ');
}
