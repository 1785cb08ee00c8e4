// The agent's side of the log broker: it keeps a ListenSubscriptions stream open to the leader
// (failing over between managers like the dispatcher session does, and going straight to the
// leader a follower names), and answers each subscription with one PublishLogs stream: the
// matching tasks' lines, then close. A subscription's close message, or the broker refusing a
// publication (its subscriber went away), aborts that publication; losing the connection aborts
// them all — the broker has already told the subscribers that this node's logs are incomplete.
import * as grpc from '@grpc/grpc-js';
import { LogBrokerClient, type LogMessage, type SubscriptionMessage } from '../../proto/gen/logs.js';
import { FailoverLoop } from '../session/failover.js';
import { publish } from './publication.js';
import type { TaskLogSource } from './source.js';

export interface LogPublisherOptions {
  /** Managers' addresses (host:port). Pass the AgentSession's own array: it adds managers it learns of. */
  managers: string[];
  /** Mutual TLS with the node's certificate (agent/credentials.ts). */
  credentials: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  source: TaskLogSource;
  /** First delay before trying the next manager; doubles up to maxBackoffMs. Default 100 ms. */
  backoffMs?: number;
  /** Default 5000 ms. */
  maxBackoffMs?: number;
  /** How often followed logs are checked for new lines. Default 100 ms. */
  pollMs?: number;
  /** With follow: how often the node's tasks are scanned for new matches. Default 1000 ms. */
  taskScanMs?: number;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

class Stopped extends Error {
  constructor() {
    super('log publisher stopped');
    this.name = 'Stopped';
  }
}

export class LogPublisher {
  private readonly failover: FailoverLoop;
  private abort: (() => void) | undefined;

  constructor(private readonly options: LogPublisherOptions) {
    if (options.managers.length === 0) throw new Error('a log publisher needs at least one manager address');
    this.failover = new FailoverLoop({
      ...options,
      onEnded: (manager, err) => this.log('log subscription stream ended', { manager, error: err instanceof Error ? err.message : String(err) }),
    });
  }

  private log(message: string, fields: Record<string, unknown>): void {
    this.options.log?.(message, fields);
  }

  /** Starts listening; reconnects until stop(). */
  start(): void {
    this.failover.start((manager, onEstablished) => this.listen(manager, onEstablished));
  }

  /** Ends the stream and every publication, and waits for them. */
  async stop(): Promise<void> {
    await this.failover.stop(() => this.abort?.());
  }

  /** One connection: settles (always with an error) when its stream ends or stop() is called. */
  private async listen(manager: string, onEstablished: () => void): Promise<void> {
    const client = new LogBrokerClient(manager, this.options.credentials, this.options.channelOptions);
    const active = new Map<string, AbortController>();
    const running = new Set<Promise<void>>();
    try {
      await new Promise<void>((_resolve, reject) => {
        const stream = client.listenSubscriptions({});
        this.abort = () => {
          stream.cancel();
          reject(new Stopped());
        };
        if (this.failover.stopped) return this.abort();
        // The broker sends its headers as soon as it has taken the stream.
        stream.on('metadata', onEstablished);
        stream.on('data', (m: SubscriptionMessage) => {
          if (m.close) return active.get(m.id)?.abort();
          if (active.has(m.id)) return;
          const ac = new AbortController();
          active.set(m.id, ac);
          const done = this.publishOne(client, m, ac.signal).finally(() => {
            active.delete(m.id);
            running.delete(done);
          });
          running.add(done);
        });
        stream.on('error', reject);
        stream.on('end', () => reject(new Error(`manager ${manager} ended the log subscription stream`)));
      });
    } finally {
      this.abort = undefined;
      for (const ac of active.values()) ac.abort();
      await Promise.all(running);
      client.close();
    }
  }

  /** Publishes one subscription over its own PublishLogs stream; never rejects. */
  private async publishOne(client: LogBrokerClient, sub: SubscriptionMessage, outer: AbortSignal): Promise<void> {
    const ac = new AbortController();
    const onOuter = () => ac.abort();
    outer.addEventListener('abort', onOuter, { once: true });
    const signal = ac.signal;
    const call = client.publishLogs((err) => {
      // The broker answers early only to refuse (the subscription is over): stop reading.
      if (err && !signal.aborted) this.log('the broker refused a log publication', { subscription: sub.id, error: err.details });
      ac.abort();
    });
    const send = (messages: LogMessage[]) =>
      new Promise<void>((resolve, reject) => {
        if (signal.aborted) return reject(new Error('publication aborted'));
        if (call.write({ subscriptionId: sub.id, messages, close: false })) return resolve();
        const go = () => {
          call.off('drain', go);
          signal.removeEventListener('abort', go);
          resolve();
        };
        call.on('drain', go);
        signal.addEventListener('abort', go, { once: true });
      });
    try {
      await send([]); // names the subscription at once, before any line is read
      await publish({ subscription: sub, source: this.options.source, send, signal, pollMs: this.options.pollMs, taskScanMs: this.options.taskScanMs });
      if (signal.aborted) call.cancel();
      else {
        call.write({ subscriptionId: sub.id, messages: [], close: true });
        call.end();
      }
    } catch (err) {
      if (!signal.aborted) this.log('publishing logs failed', { subscription: sub.id, error: err instanceof Error ? err.message : String(err) });
      call.cancel();
    } finally {
      outer.removeEventListener('abort', onOuter);
    }
  }
}
