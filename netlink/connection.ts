// One NETLINK_ROUTE socket in one network namespace, speaking request/response: every request
// carries a sequence number, the kernel answers with data messages and an ACK (NLMSG_ERROR with
// errno 0) or, for dumps, many multi-part messages closed by NLMSG_DONE.
import {
  NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
  NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLMSGERR_ATTR_MSG,
} from './constants.js';
import { NetlinkError } from './errors.js';
import { align4, Attrs, decodeMessages, encodeMessage, NLMSG_HDRLEN, readS32, readU32, type NetlinkMessage } from './message.js';
import { native, type NativeSocket } from './native.js';

/** Requests outstanding at once; the rest wait, so that ACKs never overflow the receive buffer. */
const MAX_IN_FLIGHT = 64;
/** A dump the kernel marks inconsistent (NLM_F_DUMP_INTR) is retried this many times. */
const DUMP_RETRIES = 5;
export const RECEIVE_BUFFER = 4 * 1024 * 1024;

interface Pending {
  seq: number;
  dump: boolean;
  packet: Buffer;
  operation: string;
  messages: NetlinkMessage[];
  interrupted: boolean;
  resolve(messages: NetlinkMessage[]): void;
  reject(err: Error): void;
}

export interface RequestOptions {
  /** Names the operation and object for errors, e.g. "vxlan vx0" or "delete link eth1". */
  operation: string;
  /** Turns a kernel errno into a better-worded error than strerror. */
  explain?: (errno: number, kernelMessage: string | undefined) => string | undefined;
}

export class Connection {
  private readonly socket: NativeSocket;
  private seq = Math.floor(Date.now() / 1000) >>> 0;
  private readonly inFlight = new Map<number, Pending>();
  private readonly queue: Pending[] = [];
  private dumpRunning = false;
  private closed = false;
  private referenced = false;

  /** netnsPath undefined: the caller's own namespace. */
  constructor(readonly netnsPath: string | undefined) {
    this.socket = native().open(netnsPath ?? null, 0, RECEIVE_BUFFER, (data, errno) => this.onDatagram(data, errno));
    native().ref(this.socket, false);
  }

  /** Sends one request and resolves with the data messages that came before its ACK. */
  async request(type: number, flags: number, payload: Buffer, opts: RequestOptions): Promise<NetlinkMessage[]> {
    return this.enqueue(type, flags | NLM_F_REQUEST | NLM_F_ACK, payload, opts, false);
  }

  /** Dumps a whole table (links, addresses, ...), retrying while the kernel reports it changed mid-dump. */
  async dump(type: number, payload: Buffer, opts: RequestOptions): Promise<NetlinkMessage[]> {
    for (let attempt = 0; ; attempt++) {
      const pending = await this.enqueueRaw(type, NLM_F_REQUEST | NLM_F_DUMP, payload, opts, true);
      if (!pending.interrupted || attempt >= DUMP_RETRIES) return pending.messages;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().close(this.socket);
    const err = new Error(`netlink connection${this.netnsPath ? ` to ${this.netnsPath}` : ''} closed`);
    for (const p of [...this.inFlight.values(), ...this.queue]) p.reject(err);
    this.inFlight.clear();
    this.queue.length = 0;
  }

  private async enqueue(type: number, flags: number, payload: Buffer, opts: RequestOptions, dump: boolean): Promise<NetlinkMessage[]> {
    return (await this.enqueueRaw(type, flags, payload, opts, dump)).messages;
  }

  private enqueueRaw(type: number, flags: number, payload: Buffer, opts: RequestOptions, dump: boolean): Promise<Pending> {
    if (this.closed) return Promise.reject(new Error(`${opts.operation}: the netlink connection is closed`));
    return new Promise<Pending>((resolve, reject) => {
      this.seq = (this.seq + 1) >>> 0 || 1;
      const seq = this.seq;
      const pending: Pending = {
        seq, dump, packet: encodeMessage(type, flags, seq, payload), operation: opts.operation,
        messages: [], interrupted: false,
        resolve: () => resolve(pending),
        reject,
      };
      const explain = opts.explain;
      if (explain) {
        pending.reject = (err) => {
          if (err instanceof NetlinkError) {
            const better = explain(err.errno, err.kernelMessage);
            if (better) return reject(new NetlinkError(err.operation, err.errno, err.kernelMessage, better));
          }
          reject(err);
        };
      }
      this.queue.push(pending);
      this.pump();
    });
  }

  /** Sends queued requests in order while the window allows; only one dump runs at a time. */
  private pump(): void {
    while (this.queue.length > 0 && this.inFlight.size < MAX_IN_FLIGHT) {
      const next = this.queue[0];
      if (next.dump && this.dumpRunning) break;
      this.queue.shift();
      try {
        native().send(this.socket, next.packet);
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        next.reject(errno ? new NetlinkError(next.operation, errno) : (err as Error));
        continue;
      }
      if (next.dump) this.dumpRunning = true;
      this.inFlight.set(next.seq, next);
    }
    this.updateRef();
  }

  /** The socket keeps the process alive only while answers are awaited. */
  private updateRef(): void {
    if (this.closed) return;
    const want = this.inFlight.size > 0 || this.queue.length > 0;
    if (want !== this.referenced) {
      native().ref(this.socket, want);
      this.referenced = want;
    }
  }

  private finish(p: Pending, err?: Error): void {
    this.inFlight.delete(p.seq);
    if (p.dump) this.dumpRunning = false;
    if (err) p.reject(err);
    else p.resolve(p.messages);
  }

  private onDatagram(data: Buffer | null, errno: number): void {
    if (this.closed) return;
    if (data === null) {
      // ENOBUFS: the kernel dropped answers; nobody can tell which, so everyone outstanding fails.
      for (const p of [...this.inFlight.values()]) this.finish(p, new NetlinkError(p.operation, errno));
      this.pump();
      return;
    }
    let messages: NetlinkMessage[];
    try {
      messages = decodeMessages(data);
    } catch (err) {
      for (const p of [...this.inFlight.values()]) this.finish(p, err as Error);
      this.pump();
      return;
    }
    for (const msg of messages) {
      const p = this.inFlight.get(msg.seq);
      if (!p) continue; // an answer to a request that was abandoned
      if (msg.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      switch (msg.type) {
        case NLMSG_NOOP:
        case NLMSG_OVERRUN:
          break;
        case NLMSG_ERROR: {
          const { errno: e, kernelMessage } = decodeError(msg);
          this.finish(p, e === 0 ? undefined : new NetlinkError(p.operation, e, kernelMessage));
          break;
        }
        case NLMSG_DONE: {
          // A dump that failed part-way reports a negative errno in NLMSG_DONE.
          const e = msg.payload.length >= 4 ? 0 - readS32(msg.payload, 0) : 0;
          this.finish(p, e > 0 ? new NetlinkError(p.operation, e, decodeExtAck(msg.payload.subarray(4))) : undefined);
          break;
        }
        default:
          p.messages.push(msg);
      }
    }
    this.pump();
  }
}

/** struct nlmsgerr: a negative errno, the offending request's header, then extended-ACK TLVs. */
export function decodeError(msg: NetlinkMessage): { errno: number; kernelMessage: string | undefined } {
  if (msg.payload.length < 4) return { errno: 0, kernelMessage: undefined };
  const errno = 0 - readS32(msg.payload, 0); // not -x: an ACK must give 0, not -0
  let kernelMessage: string | undefined;
  if (msg.flags & NLM_F_ACK_TLVS) {
    let tlvOffset = 4 + NLMSG_HDRLEN;
    if (!(msg.flags & NLM_F_CAPPED) && msg.payload.length >= 4 + NLMSG_HDRLEN) {
      // Uncapped: the whole original request is echoed before the TLVs.
      tlvOffset = 4 + align4(readU32(msg.payload, 4));
    }
    kernelMessage = decodeExtAck(msg.payload.subarray(Math.min(tlvOffset, msg.payload.length)));
  }
  return { errno, kernelMessage };
}

function decodeExtAck(tlvs: Buffer): string | undefined {
  try {
    const text = Attrs.decode(tlvs).string(NLMSGERR_ATTR_MSG);
    return text ? text.replace(/\.$/, '') : undefined;
  } catch {
    return undefined;
  }
}
