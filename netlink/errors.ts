// Errors the kernel returns, named after what was being done to what.
import { constants } from 'node:os';
import { native } from './native.js';

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

export class NetlinkError extends Error {
  /** The positive errno, e.g. 17. */
  readonly errno: number;
  /** The errno's name, e.g. "EEXIST". */
  readonly code: string;
  /** What was being done and to what, e.g. "vxlan vx-0001f2" or "delete link veth3". */
  readonly operation: string;
  /** The kernel's extended-ACK explanation, when it gave one. */
  readonly kernelMessage: string | undefined;

  constructor(operation: string, errno: number, kernelMessage?: string, reason?: string) {
    const text = reason ?? strerror(errno);
    const extra = kernelMessage && !reason ? ` (kernel: ${kernelMessage})` : '';
    super(`${operation}: ${text}${extra}`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = errnoNames.get(errno) ?? `E${errno}`;
    this.operation = operation;
    this.kernelMessage = kernelMessage;
  }
}

export function strerror(errno: number): string {
  try {
    return native().strerror(errno);
  } catch {
    return errnoNames.get(errno) ?? `error ${errno}`;
  }
}

export function errnoOf(name: keyof typeof constants.errno): number {
  return constants.errno[name];
}
