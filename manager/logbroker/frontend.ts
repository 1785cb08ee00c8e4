// The subscriber's entry, Logs.SubscribeLogs, wherever it is called:
// - on the leader, the broker serves it;
// - on a follower's local socket (a CLI on that machine), the stream is forwarded to the leader
//   over mutual TLS with this manager's own certificate, so `service logs` works on any manager;
// - on a follower's cluster port (another manager forwarding), it is refused with UNAVAILABLE and
//   the leader's address: forwarding happens once, never in a chain.
import * as grpc from '@grpc/grpc-js';
import { LogsClient, LogsService, type LogsHandlers, type SubscribeLogsMessage, type SubscribeLogsRequest } from '../../proto/gen/logs.js';
import { LEADER_ADDR_METADATA } from '../../proto/metadata.js';
import { callerIdentity } from '../ca/authz.js';
import { MANAGER_CHANNEL_OPTIONS } from '../ca/tlsconfig.js';
import type { LogBroker } from './broker.js';
import { LogBrokerError } from './resolve.js';

export interface LogsFrontendOptions {
  broker: LogBroker;
  /** Raft's view; between winning an election and starting the broker, callers are asked to retry. */
  isLeader?: () => boolean;
  /** The leader's cluster address, when one is known. */
  leaderAddr: () => string | undefined;
}

/** How a follower dials the leader: its own node certificate (read when needed: it is renewed). */
export interface LeaderDialing {
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
}

type SubscribeCall = grpc.ServerWritableStream<SubscribeLogsRequest, SubscribeLogsMessage>;

function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata });
}

export class LogsFrontend {
  constructor(private readonly options: LogsFrontendOptions) {}

  /** For the cluster port: other managers' forwarded calls. Register with `server.addService(LogsService, …)`. */
  clusterHandlers(): LogsHandlers {
    return {
      subscribeLogs: (call) => {
        // The authz interceptor admits managers only; checked here too, since logs are the cluster's data.
        if (callerIdentity(call)?.role !== 'manager') return void call.emit('error', serviceError(grpc.status.PERMISSION_DENIED, 'only managers may subscribe to logs on the cluster port'));
        this.serve(call, false);
      },
    };
  }

  /** For the local socket: a follower forwards to the leader. */
  localHandlers(dialing: LeaderDialing): LogsHandlers {
    return { subscribeLogs: (call) => this.serve(call, dialing) };
  }

  private serve(call: SubscribeCall, forward: LeaderDialing | false): void {
    const { broker } = this.options;
    if (broker.isRunning) return this.serveHere(call);
    if (this.options.isLeader?.()) return void call.emit('error', serviceError(grpc.status.UNAVAILABLE, 'this manager has just become the leader and is starting its log broker: try again'));
    const leader = this.options.leaderAddr();
    if (!leader) return void call.emit('error', serviceError(grpc.status.UNAVAILABLE, 'the cluster has no leader at the moment: try again'));
    if (!forward) {
      const md = new grpc.Metadata();
      md.set(LEADER_ADDR_METADATA, leader);
      return void call.emit('error', serviceError(grpc.status.UNAVAILABLE, `this manager is not the leader: logs are served by the leader at ${leader}`, md));
    }
    this.forward(call, leader, forward);
  }

  private serveHere(call: SubscribeCall): void {
    try {
      const cancel = this.options.broker.subscribe(call.request, {
        write: (m) => call.write(m),
        onDrain: (callback) => call.once('drain', callback),
        end: () => call.end(),
        fail: (e) => call.emit('error', serviceError(e.code, e.message)),
      });
      call.on('cancelled', cancel);
      call.on('close', cancel);
    } catch (e) {
      call.emit('error', e instanceof LogBrokerError ? serviceError(e.code, e.message) : serviceError(grpc.status.INTERNAL, String(e)));
    }
  }

  private forward(call: SubscribeCall, leader: string, dialing: LeaderDialing): void {
    const client = new LogsClient(leader, dialing.credentials(), dialing.channelOptions ?? MANAGER_CHANNEL_OPTIONS);
    const upstream = client.subscribeLogs(call.request);
    let done = false;
    const finish = () => {
      done = true;
      client.close();
    };
    upstream.on('data', (m: SubscribeLogsMessage) => {
      // The subscriber reads slower than the leader sends: hold the leader's stream back.
      if (!call.write(m)) {
        upstream.pause();
        call.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => {
      if (done) return;
      finish();
      call.end();
    });
    upstream.on('error', (e: grpc.ServiceError) => {
      if (done) return;
      finish();
      const unreachable = e.code === grpc.status.UNAVAILABLE && !e.metadata?.get(LEADER_ADDR_METADATA).length;
      call.emit('error', serviceError(e.code, unreachable ? `cannot reach the leader at ${leader}: ${e.details}` : e.details, e.metadata));
    });
    call.on('cancelled', () => {
      if (done) return;
      finish();
      upstream.cancel();
    });
  }
}

/**
 * The local socket's Logs service of a daemon whose manager may come and go (init, join,
 * promote): `current` returns the manager's frontend, or nothing on a node that is no manager.
 */
export function localLogsHandlers(current: () => LogsFrontend | null | undefined, dialing: LeaderDialing): LogsHandlers {
  return {
    subscribeLogs: (call) => {
      const frontend = current();
      if (frontend) return frontend.localHandlers(dialing).subscribeLogs(call);
      call.emit(
        'error',
        serviceError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm, or run this command on a manager node.'),
      );
    },
  };
}

export function registerLocalLogs(server: grpc.Server, current: () => LogsFrontend | null | undefined, dialing: LeaderDialing): void {
  server.addService(LogsService, localLogsHandlers(current, dialing));
}
