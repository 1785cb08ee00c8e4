// The leader's log broker, after swarmkit's: it fans subscriptions out to the agents and their
// published lines in to the subscribers.
// - Every agent keeps ListenSubscriptions open to the leader; a subscription is sent to the nodes
//   that hold its tasks (without follow) or to every connected node (with follow, so tasks that
//   start later anywhere are followed too; an agent with no matching task stays quiet).
// - An agent answers with one PublishLogs stream per subscription: lines, then close.
// - Without follow the subscriber's stream ends once every node holding tasks has closed or was
//   found unavailable (not connected, disconnected, DOWN, its stream broke); each unavailable node
//   is named in the stream, so the CLI can warn of an incomplete log stream like Docker does.
// The node that publishes is the one its certificate names; it may only publish lines of its own
// tasks that the subscription selects. Only the leader runs it: start() on winning leadership,
// stop() on losing it (every stream then fails with UNAVAILABLE and the leader's address).
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import {
  LogBrokerService,
  type ListenSubscriptionsRequest,
  type LogBrokerHandlers,
  type LogMessage,
  type LogSubscriptionOptions,
  type PublishLogsMessage,
  type PublishLogsResponse,
  type SubscribeLogsRequest,
  type SubscriptionMessage,
} from '../../proto/gen/logs.js';
import type { Node } from '../../proto/gen/objects.js';
import { LEADER_ADDR_METADATA } from '../../proto/metadata.js';
import { callerIdentity } from '../ca/authz.js';
import type { MemoryStore, StoreEvent } from '../store/memory.js';
import { checkedMessage, LogBrokerError, nodeName, nodesHoldingLogs, resolveTarget } from './resolve.js';
import { Subscription, type SubscriberSink } from './subscription.js';

export interface LogBrokerOptions {
  store: MemoryStore;
  /** The leader's address, named in refusals so callers go there. */
  leaderAddr?: () => string | undefined;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

/** Where subscriptions for one node go: its agent's ListenSubscriptions stream. */
export interface ListenerSink {
  write(message: SubscriptionMessage): void;
  fail(error: LogBrokerError): void;
}

interface Listener {
  nodeId: string;
  sink: ListenerSink;
}

/** Reasons complete the sentence "node NAME …" a subscriber prints. */
export const NOT_AVAILABLE = 'is not available';

function withDefaults(options: LogSubscriptionOptions | null | undefined): LogSubscriptionOptions {
  return { follow: options?.follow ?? false, tail: options?.tail ?? -1, since: options?.since ?? null, streams: options?.streams ?? [] };
}

export class LogBroker {
  private running = false;
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly listeners = new Map<string, Listener>();

  constructor(private readonly options: LogBrokerOptions) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** How many subscriptions are open (for tests and metrics). */
  get openSubscriptions(): number {
    return this.subscriptions.size;
  }

  private log(message: string, fields: Record<string, unknown>): void {
    this.options.log?.(message, fields);
  }

  /** On winning leadership. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.options.store.on('change', this.onStoreChange);
  }

  /** On losing leadership (or shutting down): every open stream fails with UNAVAILABLE. */
  stop(reason = 'this manager is no longer the leader'): void {
    if (!this.running) return;
    this.running = false;
    this.options.store.off('change', this.onStoreChange);
    const error = new LogBrokerError(grpc.status.UNAVAILABLE, `log broker stopped: ${reason}; try again`);
    for (const sub of [...this.subscriptions.values()]) sub.fail(error);
    for (const l of [...this.listeners.values()]) l.sink.fail(error);
    this.listeners.clear();
  }

  /** Serves the agents' side (ListenSubscriptions, PublishLogs) on a manager's cluster port. */
  register(server: grpc.Server): void {
    server.addService(LogBrokerService, this.handlers());
  }

  private checkRunning(): void {
    if (!this.running) throw new LogBrokerError(grpc.status.UNAVAILABLE, 'this manager is not the leader: logs are brokered by the leader');
  }

  // ---- the core, independent of gRPC --------------------------------------------------------

  /** Opens a subscription; the returned function cancels it (the subscriber went away). */
  subscribe(request: SubscribeLogsRequest, sink: SubscriberSink): () => void {
    this.checkRunning();
    const store = this.options.store;
    const { selector, target } = resolveTarget(store, request.target);
    const options = withDefaults(request.options);
    const sub = new Subscription(randomUUID(), selector, options, target, sink, (s) => this.retire(s));
    this.subscriptions.set(sub.id, sub);
    sub.begin();
    const holding = nodesHoldingLogs(store, selector);
    if (options.follow) {
      for (const l of this.listeners.values()) this.send(sub, l);
    } else {
      for (const nodeId of holding) {
        sub.pending.add(nodeId);
        const l = this.listeners.get(nodeId);
        if (l) this.send(sub, l);
      }
    }
    for (const nodeId of holding) if (!this.listeners.has(nodeId)) sub.nodeUnavailable(nodeId, nodeName(store, nodeId), NOT_AVAILABLE);
    sub.completeIfDone();
    this.log('log subscription opened', { subscription: sub.id, target: request.target, follow: options.follow, nodes: [...sub.sentTo] });
    return () => sub.cancel();
  }

  /** A node's agent listens for subscriptions; the returned function ends that (its stream closed). */
  listen(nodeId: string, sink: ListenerSink): () => void {
    this.checkRunning();
    const old = this.listeners.get(nodeId);
    if (old) {
      this.dropListener(old, 'reconnected (lines it was sending may be missing)');
      old.sink.fail(new LogBrokerError(grpc.status.ABORTED, `node ${nodeId} opened another subscription stream`));
    }
    const l: Listener = { nodeId, sink };
    this.listeners.set(nodeId, l);
    for (const sub of this.subscriptions.values()) if (sub.follow) this.send(sub, l);
    return () => this.dropListener(l, 'disconnected');
  }

  /**
   * Lines a node published for a subscription. Throws when the subscription is not the node's to
   * publish for; returns false when the subscriber is full (hold the node back until whenWritable).
   */
  publish(nodeId: string, subscriptionId: string, messages: LogMessage[]): boolean {
    const sub = this.subscriptions.get(subscriptionId);
    if (!sub) throw new LogBrokerError(grpc.status.NOT_FOUND, `log subscription ${subscriptionId} is over`);
    if (!sub.accepts(nodeId)) throw new LogBrokerError(grpc.status.FAILED_PRECONDITION, `node ${nodeId} has no part in log subscription ${subscriptionId}`);
    const checked: LogMessage[] = [];
    for (const m of messages) {
      const c = checkedMessage(this.options.store, nodeId, sub.selector, m);
      if (c) checked.push(c);
      else this.log('dropping a log line of a task the node may not publish', { node: nodeId, task: m.context?.taskId, subscription: subscriptionId });
    }
    return sub.deliver(checked);
  }

  /** Calls back once the subscription's subscriber can take more lines (at once if it is over). */
  whenWritable(subscriptionId: string, callback: () => void): void {
    const sub = this.subscriptions.get(subscriptionId);
    if (sub) sub.whenWritable(callback);
    else callback();
  }

  /** The node's publication ended: closed (all sent) or broken (error names why). */
  finished(nodeId: string, subscriptionId: string, error?: string): void {
    const sub = this.subscriptions.get(subscriptionId);
    if (!sub?.accepts(nodeId)) return;
    if (error === undefined) sub.nodeFinished(nodeId);
    else sub.nodeUnavailable(nodeId, nodeName(this.options.store, nodeId), `stopped publishing: ${error}`);
  }

  private send(sub: Subscription, l: Listener): void {
    // Sent again after a reconnect: only new lines, the old ones were delivered already.
    const options = sub.sentTo.has(l.nodeId) ? { ...sub.options, tail: 0, since: null } : sub.options;
    sub.sentTo.add(l.nodeId);
    sub.unavailable.delete(l.nodeId);
    l.sink.write({ id: sub.id, selector: sub.selector, options, close: false });
  }

  private retire(sub: Subscription): void {
    if (this.subscriptions.get(sub.id) !== sub) return;
    this.subscriptions.delete(sub.id);
    for (const nodeId of sub.sentTo) this.listeners.get(nodeId)?.sink.write({ id: sub.id, selector: null, options: null, close: true });
    this.log('log subscription closed', { subscription: sub.id });
  }

  private dropListener(l: Listener, reason: string): void {
    if (this.listeners.get(l.nodeId) !== l) return;
    this.listeners.delete(l.nodeId);
    this.nodeGone(l.nodeId, reason);
  }

  private nodeGone(nodeId: string, reason: string): void {
    const store = this.options.store;
    const name = nodeName(store, nodeId);
    for (const sub of [...this.subscriptions.values()]) {
      if (!sub.sentTo.has(nodeId)) continue;
      // A follow goes to every node; only those holding its tasks are worth a warning.
      if (sub.follow && !nodesHoldingLogs(store, sub.selector).has(nodeId)) continue;
      sub.nodeUnavailable(nodeId, name, reason);
    }
  }

  /** A node the dispatcher marks DOWN will not answer: nobody waits for its stream to time out. */
  private readonly onStoreChange = (ev: StoreEvent): void => {
    if (ev.table !== 'nodes' || ev.kind === 'remove') return;
    const node = ev.object as Node;
    if (node.status?.state === 'DOWN' && (ev.old as Node | undefined)?.status?.state !== 'DOWN') this.nodeGone(node.id, 'is down');
  };

  // ---- gRPC ---------------------------------------------------------------------------------

  private grpcError(e: unknown): grpc.ServiceError {
    const code = e instanceof LogBrokerError ? e.code : grpc.status.INTERNAL;
    const details = e instanceof Error ? e.message : String(e);
    const err = Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
    const leader = code === grpc.status.UNAVAILABLE ? this.options.leaderAddr?.() : undefined;
    if (leader) err.metadata.set(LEADER_ADDR_METADATA, leader);
    return err;
  }

  /** The calling node, from its verified certificate. */
  private caller(call: Parameters<typeof callerIdentity>[0]): string {
    this.checkRunning();
    const identity = callerIdentity(call);
    if (!identity) throw new LogBrokerError(grpc.status.UNAUTHENTICATED, 'a node certificate is required');
    if (!this.options.store.get('nodes', identity.nodeId)) throw new LogBrokerError(grpc.status.NOT_FOUND, `node ${identity.nodeId} is not part of the cluster`);
    return identity.nodeId;
  }

  handlers(): LogBrokerHandlers {
    return { listenSubscriptions: this.listenSubscriptions, publishLogs: this.publishLogs };
  }

  private readonly listenSubscriptions: grpc.handleServerStreamingCall<ListenSubscriptionsRequest, SubscriptionMessage> = (call) => {
    let stop: (() => void) | undefined;
    try {
      const nodeId = this.caller(call);
      stop = this.listen(nodeId, {
        write: (m) => call.write(m),
        fail: (e) => call.emit('error', this.grpcError(e)),
      });
    } catch (e) {
      call.emit('error', this.grpcError(e));
      return;
    }
    // Headers at once: the agent learns its stream is taken before any subscription comes.
    call.sendMetadata(new grpc.Metadata());
    call.on('cancelled', stop);
    call.on('error', stop);
    call.on('close', stop);
  };

  private readonly publishLogs: grpc.handleClientStreamingCall<PublishLogsMessage, PublishLogsResponse> = (call, callback) => {
    let nodeId: string;
    try {
      nodeId = this.caller(call);
    } catch (e) {
      callback(this.grpcError(e));
      return;
    }
    let subscriptionId = '';
    let settled = false;
    const settle = (error?: string, reply?: grpc.ServiceError) => {
      if (settled) return;
      settled = true;
      if (subscriptionId) this.finished(nodeId, subscriptionId, error);
      callback(reply ?? null, reply ? undefined : {});
    };
    call.on('data', (m: PublishLogsMessage) => {
      if (settled) return;
      subscriptionId ||= m.subscriptionId;
      try {
        if (m.subscriptionId !== subscriptionId) throw new LogBrokerError(grpc.status.INVALID_ARGUMENT, `one PublishLogs stream is for one subscription (${subscriptionId}), not ${m.subscriptionId}`);
        if (!this.publish(nodeId, subscriptionId, m.messages)) {
          // The subscriber reads slower than the node sends: stop reading the node's stream.
          call.pause();
          this.whenWritable(subscriptionId, () => call.resume());
        }
      } catch (e) {
        settle(e instanceof Error ? e.message : String(e), this.grpcError(e));
        return;
      }
      if (m.close) settle();
    });
    call.on('end', () => settle('the stream ended without closing the publication'));
    call.on('error', (e: Error) => settle(e.message));
    call.on('cancelled', () => settle('the node cancelled its stream'));
  };
}
