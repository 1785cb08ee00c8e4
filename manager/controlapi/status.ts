// A service's task counts as `service ls` shows them (REPLICAS "2/3", "1/1 (3/5 completed)"),
// counted the way Docker's daemon counts them: running tasks on nodes that are not down; desired
// from the spec for replicated services and jobs, from the live tasks for global ones.
import type { ServiceStatus } from '../../proto/gen/control.js';
import type { Node, Service, Task } from '../../proto/gen/objects.js';
import { jobLimits } from '../orchestrator/jobs/reconcile.js';
import { isJob, serviceMode } from '../orchestrator/service.js';
import { isLive, observedState } from '../orchestrator/task.js';
import type { ReadView } from '../store/memory.js';

export function serviceStatus(view: ReadView, service: Service): ServiceStatus {
  let tasks = view.find('tasks', 'service', service.id);
  // A job counts its current run only.
  if (isJob(service)) tasks = tasks.filter((t) => t.jobIteration === service.jobIteration);
  const nodeUp = (t: Task) => {
    const n: Node | undefined = t.nodeId ? view.get('nodes', t.nodeId) : undefined;
    return n !== undefined && n.status?.state !== 'DOWN';
  };
  const runningTasks = tasks.filter((t) => observedState(t) === 'RUNNING' && nodeUp(t)).length;
  const completedTasks = tasks.filter((t) => observedState(t) === 'COMPLETE').length;
  const live = tasks.filter(isLive).length;
  let desiredTasks: number;
  switch (serviceMode(service)) {
    case 'replicated':
      desiredTasks = service.spec?.replicated?.replicas ?? 0;
      break;
    case 'replicatedJob': {
      const { total, maxConcurrent } = jobLimits(service);
      desiredTasks = Math.max(0, Math.min(maxConcurrent, total - completedTasks));
      break;
    }
    default:
      desiredTasks = live;
  }
  return { serviceId: service.id, runningTasks, desiredTasks, completedTasks };
}
