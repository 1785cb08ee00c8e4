// Errors the allocator reports to users. `code` says what kind of failure it is, so the control
// API can map it to a gRPC status without parsing messages.

export type AllocatorErrorCode =
  /** The request itself is wrong (a malformed subnet, a gateway outside it). */
  | 'InvalidArgument'
  /** The request collides with something that exists (overlapping subnets, a taken port). */
  | 'AlreadyExists'
  /** Nothing is left to hand out (a full subnet, every dynamic port taken). */
  | 'ResourceExhausted'
  /** The state does not allow it (removing a network still in use). */
  | 'FailedPrecondition';

export class AllocatorError extends Error {
  override name = 'AllocatorError';
  constructor(
    readonly code: AllocatorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (message: string): AllocatorError => new AllocatorError('InvalidArgument', message);
export const conflict = (message: string): AllocatorError => new AllocatorError('AlreadyExists', message);
export const exhausted = (message: string): AllocatorError => new AllocatorError('ResourceExhausted', message);
export const precondition = (message: string): AllocatorError => new AllocatorError('FailedPrecondition', message);
