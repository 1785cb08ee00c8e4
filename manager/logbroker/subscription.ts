// One subscriber's subscription on the broker: which nodes were asked for logs, which of them the
// subscriber still waits for, and which could not answer. Without follow it is complete once no
// node is pending: every node either closed its publication or was found unavailable (then the
// subscriber has been told, so an incomplete stream is never mistaken for a complete one).
import type { LogMessage, LogSelector, LogSubscriptionOptions, LogTarget, SubscribeLogsMessage } from '../../proto/gen/logs.js';
import type { LogBrokerError } from './resolve.js';

/** Where a subscription's messages go: the subscriber's gRPC stream, or a test's array. */
export interface SubscriberSink {
  /** False when the subscriber's buffer is full: publishers are held back until onDrain. */
  write(message: SubscribeLogsMessage): boolean | void;
  /** Calls back once the subscriber can take more (a gRPC stream's 'drain'). */
  onDrain?(callback: () => void): void;
  /** Everything was delivered (or reported unavailable): end the stream. */
  end(): void;
  /** The broker cannot serve the subscription any more (it stopped: leadership moved). */
  fail(error: LogBrokerError): void;
}

export class Subscription {
  /** Nodes the subscription was sent to: only they may publish for it. */
  readonly sentTo = new Set<string>();
  /** Without follow: nodes still to close their publication. */
  readonly pending = new Set<string>();
  /** Nodes reported to the subscriber as unavailable, with the reason. */
  readonly unavailable = new Map<string, string>();
  private over = false;

  constructor(
    readonly id: string,
    readonly selector: LogSelector,
    readonly options: LogSubscriptionOptions,
    readonly target: LogTarget,
    private readonly sink: SubscriberSink,
    /** Called once when the subscription ends, whichever way. */
    private readonly onOver: (sub: Subscription) => void,
  ) {}

  get follow(): boolean {
    return this.options.follow;
  }

  get isOver(): boolean {
    return this.over;
  }

  /** Whether a node's publication for this subscription is taken. */
  accepts(nodeId: string): boolean {
    return !this.over && (this.follow ? this.sentTo.has(nodeId) : this.pending.has(nodeId));
  }

  begin(): void {
    this.sink.write({ target: this.target, messages: [], unavailable: [] });
  }

  /** False when the subscriber cannot take more for now (see whenWritable). */
  deliver(messages: LogMessage[]): boolean {
    if (this.over || messages.length === 0) return true;
    return this.sink.write({ target: null, messages, unavailable: [] }) !== false;
  }

  whenWritable(callback: () => void): void {
    if (this.over || !this.sink.onDrain) return callback();
    this.sink.onDrain(callback);
  }

  /** The node published all it has. */
  nodeFinished(nodeId: string): void {
    this.pending.delete(nodeId);
    this.completeIfDone();
  }

  /** The node cannot (or can no longer) publish: the subscriber is told, once per node. */
  nodeUnavailable(nodeId: string, nodeName: string, reason: string): void {
    if (this.over) return;
    const wasPending = this.pending.delete(nodeId);
    if (!this.unavailable.has(nodeId) && (wasPending || this.follow)) {
      this.unavailable.set(nodeId, reason);
      this.sink.write({ target: null, messages: [], unavailable: [{ nodeId, nodeName, reason }] });
    }
    this.completeIfDone();
  }

  /** Without follow: ends the stream once no node is pending. */
  completeIfDone(): void {
    if (this.over || this.follow || this.pending.size > 0) return;
    this.finish();
    this.sink.end();
  }

  /** The subscriber went away. */
  cancel(): void {
    if (!this.over) this.finish();
  }

  fail(error: LogBrokerError): void {
    if (this.over) return;
    this.finish();
    this.sink.fail(error);
  }

  private finish(): void {
    this.over = true;
    this.onOver(this);
  }
}
