// The scheduler's public face. The manager runs a `Scheduler` on the leader; the control API
// checks `--constraint` and `--placement-pref` with `validatePlacement` (or `parseConstraint`)
// when a service is created or updated; `schedule` is the pure core the Scheduler wraps.
export { Scheduler, ASSIGNED_MESSAGE, CONFIRMED_MESSAGE, PENDING_MESSAGE, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
export { schedule, noSuitableNode, NO_SUITABLE_NODE, type Assignment, type Unplaced, type ScheduleResult, type ScheduleOptions } from './schedule.js';
export { NodeInfo, buildNodeInfos } from './nodeinfo.js';
export {
  ConstraintError,
  parseConstraint,
  parseConstraints,
  nodeMatches,
  validatePlacement,
  validateSpreadDescriptor,
  type Constraint,
} from './constraint.js';
export { DEFAULT_FILTERS, Pipeline } from './pipeline.js';
export type { Filter } from './filters/filter.js';
