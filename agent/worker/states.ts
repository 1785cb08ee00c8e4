// Task state arithmetic. States compare by swarmkit's numbers (proto TaskState): a task's observed
// state only ever moves forward, and "at least RUNNING" or "terminal" are comparisons.
import { TaskStateNumber, type TaskState, type TaskStatus } from '../../proto/gen/objects.js';

export function stateNumber(state: TaskState): number {
  return TaskStateNumber[state];
}

/** a < b in the task lifecycle. */
export function before(a: TaskState, b: TaskState): boolean {
  return stateNumber(a) < stateNumber(b);
}

/** a ≥ b in the task lifecycle. */
export function atLeast(a: TaskState, b: TaskState): boolean {
  return stateNumber(a) >= stateNumber(b);
}

/** COMPLETE, SHUTDOWN, FAILED, REJECTED (and beyond): the container will not run again. */
export function isTerminal(state: TaskState): boolean {
  return atLeast(state, 'COMPLETE');
}

/**
 * The state a failure turns into, as swarmkit decides it: a task that never reached STARTING was
 * rejected by this node (bad spec, missing image); one that had started has failed.
 */
export function failureState(reachedState: TaskState): TaskState {
  return before(reachedState, 'STARTING') ? 'REJECTED' : 'FAILED';
}

export function emptyStatus(state: TaskState, timestamp: number): TaskStatus {
  return { timestamp, state, message: '', err: '', container: null, health: '', hostPorts: [] };
}
