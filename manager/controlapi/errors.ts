// Errors the Control API returns to users. Each carries the gRPC status code it goes out with, so
// the daemon maps errors to statuses without parsing messages. Errors from the parts the control
// API calls into (the allocator's checks, the constraint parser, the store's apply-time checks)
// are translated here, in one place.
import { status } from '@grpc/grpc-js';
import { AllocatorError, type AllocatorErrorCode } from '../allocator/errors.js';
import { ConstraintError } from '../scheduler/constraint.js';
import { ConflictError, ExistsError, NotFoundError } from '../store/memory.js';

export class ControlError extends Error {
  override name = 'ControlError';
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (message: string): ControlError => new ControlError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string): ControlError => new ControlError(status.NOT_FOUND, message);
export const exists = (message: string): ControlError => new ControlError(status.ALREADY_EXISTS, message);
export const precondition = (message: string): ControlError => new ControlError(status.FAILED_PRECONDITION, message);

/**
 * An update names the version of the object its client read; one that changed since is refused
 * (swarmkit's "update out of sequence"), so no one overwrites a change they never saw.
 */
export function checkVersionRead(what: string, read: number, current: number): void {
  if (read !== current) {
    throw precondition(`${what} was changed since it was read (update out of sequence: version ${read} was read, it is now at ${current}): read it again and retry`);
  }
}

const ALLOCATOR_CODES: Record<AllocatorErrorCode, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  AlreadyExists: status.ALREADY_EXISTS,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  FailedPrecondition: status.FAILED_PRECONDITION,
};

/**
 * The error as the control API reports it: ControlErrors as they are, known errors of the
 * allocator, scheduler and store with their status, anything else unchanged (an internal fault,
 * or the Raft layer's NotLeaderError, which the daemon maps).
 */
export function asControlError(e: unknown): unknown {
  if (e instanceof ControlError) return e;
  if (e instanceof AllocatorError) return new ControlError(ALLOCATOR_CODES[e.code], e.message);
  if (e instanceof ConstraintError) return invalid(e.message);
  if (e instanceof ExistsError) return exists(e.message);
  if (e instanceof NotFoundError) return notFound(e.message);
  // A transaction that kept losing races: the object changed under it each time.
  if (e instanceof ConflictError) return new ControlError(status.ABORTED, `${e.message}; try again`);
  return e;
}

/** Runs `fn`, translating what it throws with asControlError. */
export async function translated<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw asControlError(e);
  }
}
