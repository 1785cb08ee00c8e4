// The agent's side of the dispatcher protocol: one session at a time with one manager. It opens
// Session, heartbeats at the period the manager asks for, feeds the Assignments stream into the
// worker and delivers the reporter's status batches with UpdateTaskStatus. Anything going wrong
// (a call failing, a stream ending, the worker rejecting an assignment) ends the session; the
// agent then tries the next manager of its list after a backoff, and a new session starts with
// a COMPLETE set of assignments, so nothing is lost in between.
import * as grpc from '@grpc/grpc-js';
import { DispatcherClient, type AssignmentsMessage, type SessionMessage, type TaskStatusUpdate } from '../../proto/gen/dispatcher.js';
import type { NodeDescription } from '../../proto/gen/objects.js';
import { FailoverLoop } from './failover.js';

/** What the session drives: agent/worker's Worker fits. */
export interface AssignmentsConsumer {
  applyAssignments(message: AssignmentsMessage): Promise<void>;
}

/** Where status batches come from: agent/worker's BatchingStatusReporter fits. */
export interface StatusSource {
  setSink(sink: ((updates: TaskStatusUpdate[]) => Promise<void>) | undefined): void;
}

export interface AgentSessionOptions {
  /** Managers' addresses (host:port), tried in order. */
  managers: string[];
  /** Mutual TLS with the node's certificate. */
  credentials: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  description: NodeDescription;
  worker: AssignmentsConsumer;
  reporter: StatusSource;
  /** First delay before trying the next manager; doubles up to maxBackoffMs. Default 100 ms. */
  backoffMs?: number;
  /** Default 5000 ms. */
  maxBackoffMs?: number;
  /** Deadline of unary calls and of the wait for the first SessionMessage. Default 10 s. */
  callTimeoutMs?: number;
  /** Called with each SessionMessage (the node as registered, the managers list). */
  onSession?: (message: SessionMessage, manager: string) => void;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

class Stopped extends Error {
  constructor() {
    super('agent session stopped');
    this.name = 'Stopped';
  }
}

export class AgentSession {
  private readonly failover: FailoverLoop;
  private abort: (() => void) | undefined;
  private sessionId = '';
  private readonly callTimeoutMs: number;
  /** The period the managers last asked for: it grows with the cluster (see FailoverOptions.spreadMs). */
  private heartbeatPeriodMs = 0;

  constructor(private readonly options: AgentSessionOptions) {
    if (options.managers.length === 0) throw new Error('an agent session needs at least one manager address');
    this.failover = new FailoverLoop({
      ...options,
      spreadMs: () => this.heartbeatPeriodMs / 2,
      onEnded: (manager, err) => this.log('session with manager ended', { manager, error: err instanceof Error ? err.message : String(err) }),
    });
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
  }

  private log(message: string, fields: Record<string, unknown>): void {
    this.options.log?.(message, fields);
  }

  /** Starts connecting; sessions are kept up until stop(). */
  start(): void {
    this.failover.start((manager, onEstablished) => this.runSession(manager, onEstablished));
  }

  /** Ends the session (no more heartbeats) and waits for everything to be closed. */
  async stop(): Promise<void> {
    await this.failover.stop(() => this.abort?.());
  }

  /** One session: settles (always with an error) when anything about it fails or stop() is called. */
  private async runSession(manager: string, onEstablished: () => void): Promise<void> {
    const { worker, reporter } = this.options;
    const client = new DispatcherClient(manager, this.options.credentials, this.options.channelOptions);
    const streams: grpc.ClientReadableStream<unknown>[] = [];
    let heartbeatTimer: NodeJS.Timeout | undefined;
    let firstMessageTimer: NodeJS.Timeout | undefined;
    let over = false;
    try {
      await new Promise<void>((_resolve, reject) => {
        const fail = (err: unknown) => {
          over = true;
          reject(err instanceof Error ? err : new Error(String(err)));
        };
        this.abort = () => fail(new Stopped());
        if (this.failover.stopped) return fail(new Stopped());

        const session = client.session({ description: this.options.description, sessionId: this.sessionId });
        streams.push(session);
        firstMessageTimer = setTimeout(() => fail(new Error(`no session from manager ${manager} within ${this.callTimeoutMs} ms`)), this.callTimeoutMs);
        let sessionId = '';
        session.on('data', (message: SessionMessage) => {
          // Learn the managers the cluster has now, so a failover can reach ones that joined later.
          for (const peer of message.managers) if (peer.addr && !this.options.managers.includes(peer.addr)) this.options.managers.push(peer.addr);
          this.options.onSession?.(message, manager);
          if (sessionId) return; // later messages only carry updates (managers list, root CA)
          clearTimeout(firstMessageTimer);
          sessionId = this.sessionId = message.sessionId;
          onEstablished();
          this.log('session opened', { manager, session: sessionId });
          reporter.setSink((updates) => this.updateTaskStatus(client, sessionId, updates));
          beat();
          const assignments = client.assignments({ sessionId });
          streams.push(assignments);
          consume(assignments).then(() => fail(new Error(`manager ${manager} ended the assignments stream`)), fail);
        });
        session.on('error', fail);
        session.on('end', () => fail(new Error(`manager ${manager} ended the session`)));

        const beat = () => {
          if (over) return;
          client.heartbeat({ sessionId }, new grpc.Metadata(), { deadline: Date.now() + this.callTimeoutMs }, (err, response) => {
            if (over) return;
            if (err || !response) return fail(err ?? new Error('empty heartbeat response'));
            // Beat again at the period the manager asked for; it allows some grace beyond it.
            this.heartbeatPeriodMs = response.periodMs > 0 ? response.periodMs : 1000;
            heartbeatTimer = setTimeout(beat, this.heartbeatPeriodMs);
          });
        };
        const consume = async (stream: grpc.ClientReadableStream<AssignmentsMessage>) => {
          for await (const message of stream as AsyncIterable<AssignmentsMessage>) {
            if (over) return;
            await worker.applyAssignments(message);
          }
        };
      });
    } finally {
      over = true;
      this.abort = undefined;
      reporter.setSink(undefined);
      clearTimeout(heartbeatTimer);
      clearTimeout(firstMessageTimer);
      for (const s of streams) s.cancel();
      client.close();
    }
  }

  private updateTaskStatus(client: DispatcherClient, sessionId: string, updates: TaskStatusUpdate[]): Promise<void> {
    return new Promise((resolve, reject) => {
      client.updateTaskStatus({ sessionId, updates }, new grpc.Metadata(), { deadline: Date.now() + this.callTimeoutMs }, (err) => (err ? reject(err) : resolve()));
    });
  }
}
