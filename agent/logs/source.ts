// Where the publisher finds a task's logs on this node: the worker knows the tasks, the runtime's
// layout knows where conmon writes each container's log (k8s-file, rotated by the runtime) and
// where it records the exit that makes the log complete. The container of a task is found from
// the task id alone (containerIdFor), as the worker itself finds it after a restart.
import { stat } from 'node:fs/promises';
import type { Task } from '../../proto/gen/objects.js';
import type { Layout } from '../runtime/runc/layout.js';
import { containerIdFor } from '../worker/naming.js';

/** What a subscription's selector matches on. */
export interface LocalTask {
  id: string;
  serviceId: string;
  nodeId: string;
  slot: number;
}

/** A container's log as the runtime's reader (agent/runtime/logs/reader.ts) takes it. */
export interface TaskLog {
  /** The live file; rotated files are `<logPath>.1` … beside it. */
  logPath: string;
  /** True once the container has exited, so no line can follow: a follower stops there. */
  isFinished: () => Promise<boolean>;
}

export interface TaskLogSource {
  /** The tasks this node has now. */
  tasks(): LocalTask[];
  /** The task's container log; undefined while (or once) it has no container. */
  log(taskId: string): Promise<TaskLog | undefined>;
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
 * The source of a real agent: `runcTaskLogs(worker, runtime)` with agent/worker's Worker and
 * agent/runtime/runc's RuncRuntime (its `layout`).
 */
export function runcTaskLogs(worker: { list(): Array<{ task: Task }> }, runtime: { layout: Layout }): TaskLogSource {
  return {
    tasks: () => worker.list().map(({ task }) => ({ id: task.id, serviceId: task.serviceId, nodeId: task.nodeId, slot: task.slot })),
    log: async (taskId) => {
      const paths = runtime.layout.container(containerIdFor(taskId));
      // meta.json is written before conmon starts and removed last: no meta, no container.
      if (!(await exists(paths.meta))) return undefined;
      return { logPath: paths.log, isFinished: async () => (await exists(paths.exitFile)) || !(await exists(paths.meta)) };
    },
  };
}
