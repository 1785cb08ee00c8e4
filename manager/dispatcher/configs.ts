// Config data travels with the task: the agent has no store, so each config reference of a task
// sent to its node carries the config's bytes (the store keeps only the reference). A config that
// is gone leaves the data empty; the agent then refuses the task, naming the config.
import type { Config, Task } from '../../proto/gen/objects.js';

export function withConfigData(task: Task, configById: (id: string) => Config | undefined): Task {
  const container = task.spec?.container;
  if (!container || container.configs.length === 0) return task;
  const configs = container.configs.map((r) => ({ ...r, data: configById(r.configId)?.spec?.data ?? new Uint8Array(0) }));
  return { ...task, spec: { ...task.spec!, container: { ...container, configs } } };
}
