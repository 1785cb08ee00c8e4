// RaftTransport carries Raft messages between managers over gRPC (proto/raft.proto).
//
// - Steady flow: one long-lived client-streaming `Stream` call per peer, opened on the first
//   send. send() queues; a pump on the next turn of the event loop packs everything queued into
//   MessageBatches (binary payload, see wire.ts) of at most maxBatchBytes and writes them,
//   respecting back-pressure: after write() returns false nothing more is written until 'drain'.
//   Messages are delivered in send order per peer.
// - Bounded memory: while a stream is blocked, queued messages beyond maxPendingBytes or
//   maxPendingMessages are dropped (Raft retransmits) and the peer is reported unreachable.
// - Failure: when a stream fails, its queue is dropped, onUnreachable(peer) is called, and the
//   peer sits out an exponential backoff (messages to it are dropped meanwhile), then the next
//   send opens a new stream. The backoff resets once a stream is confirmed (the server sends its
//   headers at once).
// - Snapshots: MsgSnap goes on its own `SendSnapshot` call, on a separate connection, in chunks,
//   so a multi-MiB snapshot does not hold up heartbeats. onSnapshotStatus(peer, ok) reports the
//   outcome, which the runner turns into the core's reportSnapshot.
//
// Credentials are passed in: insecure in tests, mutual TLS in a cluster.
import * as grpc from '@grpc/grpc-js';
import { MessageTypeValues, RaftClient, RaftService, type Message as ProtoMessage, type MessageBatch, type RaftHandlers, type SnapshotAck, type SnapshotChunk } from '../../../proto/gen/raft.js';
import { crc32c } from '../storage/crc32c.js';
import { EntryType, MessageType, type Message, type NodeId } from '../types.js';
import { decodeMessages, encodeMessages, messageSize } from './wire.js';

export interface RaftTransportOptions {
  /** This node's id: the `from` of batches it sends; batches to another id are refused. */
  id: NodeId;
  /** For dialing peers (grpc.credentials.createInsecure() in tests, mutual TLS in a cluster). */
  channelCredentials: grpc.ChannelCredentials;
  /** For listen(); not needed when the service is registered on an existing server. */
  serverCredentials?: grpc.ServerCredentials;
  /** Extra channel options for every peer connection, e.g. grpc.ssl_target_name_override. */
  channelOptions?: grpc.ChannelOptions;
  /** A message from a peer. Called synchronously from the network; must not throw (errors are logged). */
  onMessage: (message: Message) => void;
  /** A peer could not be reached or its messages were dropped: the runner calls the core's reportUnreachable. */
  onUnreachable?: (id: NodeId) => void;
  /** A snapshot sent to `id` was delivered (ok) or failed: the runner calls the core's reportSnapshot. */
  onSnapshotStatus?: (id: NodeId, ok: boolean) => void;
  /** Structured events (stream failures, drops) for the daemon's JSON log. */
  log?: (event: Record<string, unknown>) => void;
  /** Per-peer bound on queued, unsent bytes (default 16 MiB). */
  maxPendingBytes?: number;
  /** Per-peer bound on queued, unsent messages (default 4096). */
  maxPendingMessages?: number;
  /** Target size of one MessageBatch (default 1 MiB; a bigger single message goes alone). */
  maxBatchBytes?: number;
  /** Largest message or snapshot accepted from a peer (default 1 GiB for snapshots, 64 MiB per batch). */
  maxReceiveBytes?: number;
  maxSnapshotBytes?: number;
  /** Snapshot chunk size (default 1 MiB). */
  snapshotChunkBytes?: number;
  /** Reconnect backoff after a stream fails (default 100 ms doubling to 2 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Least time between two unreachable reports for one peer while it stays down (default 1 s). */
  unreachableReportMs?: number;
}

export interface PeerStats {
  /** Messages written to the peer's stream. */
  sent: number;
  batches: number;
  /** Messages dropped: peer down, queue full, or stream failed with them queued. */
  dropped: number;
  /** Streams that failed. */
  failures: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  /** Currently queued bytes (never above maxPendingBytes). */
  queuedBytes: number;
}

interface Queued {
  message: Message;
  size: number;
}

class Peer {
  call: grpc.ClientWritableStream<MessageBatch> | null = null;
  writable = true;
  queue: Queued[] = [];
  queuedBytes = 0;
  pumpScheduled = false;
  backoffTimer: NodeJS.Timeout | null = null;
  backoffMs: number;
  lastReport = -Infinity;
  snapshotInFlight = false;
  closed = false;
  readonly stats: PeerStats = { sent: 0, batches: 0, dropped: 0, failures: 0, snapshotsSent: 0, snapshotsFailed: 0, queuedBytes: 0 };

  constructor(
    readonly id: NodeId,
    readonly address: string,
    readonly client: RaftClient,
    /** A separate connection, so snapshot bytes do not share flow control with heartbeats. */
    readonly snapClient: RaftClient,
    backoffMs: number,
  ) {
    this.backoffMs = backoffMs;
  }
}

interface Inbound {
  finish: () => void;
}

export class RaftTransport {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<Inbound>();
  private server: grpc.Server | null = null;
  private closed = false;
  private readonly o: Required<Omit<RaftTransportOptions, 'serverCredentials' | 'channelOptions' | 'onUnreachable' | 'onSnapshotStatus' | 'log'>> &
    RaftTransportOptions;

  constructor(opts: RaftTransportOptions) {
    this.o = {
      maxPendingBytes: 16 * 1024 * 1024,
      maxPendingMessages: 4096,
      maxBatchBytes: 1024 * 1024,
      maxReceiveBytes: 64 * 1024 * 1024,
      maxSnapshotBytes: 1024 * 1024 * 1024,
      snapshotChunkBytes: 1024 * 1024,
      backoffInitialMs: 100,
      backoffMaxMs: 2000,
      unreachableReportMs: 1000,
      ...opts,
    };
  }

  get id(): NodeId {
    return this.o.id;
  }

  // ---- server side ----

  /** gRPC server options the Raft service needs (large receives, keepalive). */
  static serverOptions(maxReceiveBytes = 64 * 1024 * 1024): grpc.ServerOptions {
    return {
      'grpc.max_receive_message_length': maxReceiveBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    };
  }

  /** Adds the Raft service to a server the caller owns (create it with serverOptions()). */
  register(server: grpc.Server): void {
    server.addService(RaftService, this.handlers());
  }

  /** Serves on its own server at `address` ("127.0.0.1:0" picks a port); returns the port. */
  async listen(address: string): Promise<number> {
    if (!this.o.serverCredentials) throw new Error('raft transport: listen() needs serverCredentials');
    const server = new grpc.Server(RaftTransport.serverOptions(this.o.maxReceiveBytes));
    this.register(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, this.o.serverCredentials!, (err, p) => (err ? reject(new Error(`raft transport: cannot listen on ${address}: ${err.message}`)) : resolve(p))),
    );
    this.server = server;
    return port;
  }

  private handlers(): RaftHandlers {
    return {
      stream: (call, callback) => {
        // Headers at once: they tell the sender its stream is up.
        call.sendMetadata(new grpc.Metadata());
        let done = false;
        const entry: Inbound = {
          finish: () => {
            if (done) return;
            done = true;
            this.inbound.delete(entry);
            callback(null, {});
          },
        };
        this.inbound.add(entry);
        call.on('data', (batch: MessageBatch) => this.receiveBatch(batch));
        call.on('end', () => entry.finish());
        call.on('error', () => {
          done = true;
          this.inbound.delete(entry);
        });
      },
      sendSnapshot: (call, callback) => this.receiveSnapshot(call, callback),
    };
  }

  private receiveBatch(batch: MessageBatch): void {
    if (batch.to !== this.o.id) {
      this.o.log?.({ msg: 'raft transport: dropped a batch addressed to another node', to: batch.to, from: batch.from, self: this.o.id });
      return;
    }
    let messages: Message[];
    try {
      messages = batch.payload.length ? decodeMessages(batch.payload) : batch.messages.map(fromProto);
    } catch (err) {
      this.o.log?.({ msg: 'raft transport: dropped a malformed batch', from: batch.from, error: (err as Error).message });
      return;
    }
    for (const m of messages) this.deliver(m);
  }

  private deliver(m: Message): void {
    if (m.to !== this.o.id) return;
    try {
      this.o.onMessage(m);
    } catch (err) {
      this.o.log?.({ msg: 'raft transport: onMessage threw', type: MessageType[m.type], from: m.from, error: (err as Error).message });
    }
  }

  private receiveSnapshot(call: grpc.ServerReadableStream<SnapshotChunk, SnapshotAck>, callback: grpc.sendUnaryData<SnapshotAck>): void {
    let header: Message | null = null;
    let data: Buffer | null = null;
    let received = 0;
    let crc = 0;
    let failed: string | null = null;
    let complete = false;
    const fail = (why: string) => {
      if (failed) return;
      failed = why;
      data = null;
      this.o.log?.({ msg: 'raft transport: refused a snapshot', error: why });
      callback({ code: grpc.status.INVALID_ARGUMENT, details: why });
    };
    call.on('data', (chunk: SnapshotChunk) => {
      if (failed) return;
      if (!header) {
        if (chunk.to !== this.o.id) return fail(`snapshot addressed to node ${chunk.to}, this is node ${this.o.id}`);
        try {
          const [m] = decodeMessages(chunk.message);
          if (!m?.snapshot || m.type !== MessageType.MsgSnap) return fail('first snapshot chunk does not carry a MsgSnap');
          header = m;
        } catch (err) {
          return fail(`bad snapshot header: ${(err as Error).message}`);
        }
        if (chunk.totalSize > this.o.maxSnapshotBytes) return fail(`snapshot of ${chunk.totalSize} bytes exceeds the limit of ${this.o.maxSnapshotBytes}`);
        data = Buffer.allocUnsafe(chunk.totalSize);
      }
      if (chunk.offset !== received) return fail(`chunk at offset ${chunk.offset}, expected ${received}`);
      if (received + chunk.data.length > data!.length) return fail(`chunks exceed the announced ${data!.length} bytes`);
      data!.set(chunk.data, received);
      crc = crc32c(chunk.data, 0, chunk.data.length, crc);
      received += chunk.data.length;
      if (chunk.last) {
        if (received !== data!.length) return fail(`last chunk at ${received} of ${data!.length} bytes`);
        if (chunk.crc32c !== crc) return fail(`snapshot CRC mismatch (sent ${chunk.crc32c}, computed ${crc})`);
        complete = true;
      }
    });
    call.on('end', () => {
      if (failed) return;
      if (!complete || !header) return fail(`snapshot stream ended after ${received} bytes without its last chunk`);
      const snap = header.snapshot!;
      this.deliver({ ...header, snapshot: { metadata: snap.metadata, data: new Uint8Array(data!.buffer, data!.byteOffset, data!.length) } });
      callback(null, { received });
    });
    call.on('error', () => {
      failed ??= 'stream error';
    });
  }

  // ---- client side ----

  addPeer(id: NodeId, address: string): void {
    const existing = this.peers.get(id);
    if (existing?.address === address) return;
    if (existing) this.removePeer(id);
    const options: grpc.ChannelOptions = {
      'grpc.initial_reconnect_backoff_ms': this.o.backoffInitialMs,
      'grpc.max_reconnect_backoff_ms': this.o.backoffMaxMs,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      ...this.o.channelOptions,
    };
    const client = new RaftClient(address, this.o.channelCredentials, options);
    const snapClient = new RaftClient(address, this.o.channelCredentials, { ...options, 'grpc.use_local_subchannel_pool': 1 });
    this.peers.set(id, new Peer(id, address, client, snapClient, this.o.backoffInitialMs));
  }

  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    this.shutPeer(peer);
  }

  hasPeer(id: NodeId): boolean {
    return this.peers.has(id);
  }

  peerStats(id: NodeId): Readonly<PeerStats> | undefined {
    const p = this.peers.get(id);
    if (!p) return undefined;
    p.stats.queuedBytes = p.queuedBytes;
    return { ...p.stats };
  }

  /** Queues messages for their peers (m.to). Never blocks and never throws for a bad peer. */
  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const peer = this.peers.get(m.to);
      if (!peer) {
        this.o.log?.({ msg: 'raft transport: dropped a message to an unknown peer', to: m.to, type: MessageType[m.type] });
        this.o.onUnreachable?.(m.to);
        continue;
      }
      if (m.type === MessageType.MsgSnap && m.snapshot) {
        this.startSnapshot(peer, m);
        continue;
      }
      if (peer.backoffTimer) {
        this.drop(peer, 1);
        continue;
      }
      const size = messageSize(m);
      if (peer.queue.length > 0 && (peer.queuedBytes + size > this.o.maxPendingBytes || peer.queue.length >= this.o.maxPendingMessages)) {
        this.drop(peer, 1);
        continue;
      }
      peer.queue.push({ message: m, size });
      peer.queuedBytes += size;
      this.schedulePump(peer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of this.peers.values()) this.shutPeer(peer);
    this.peers.clear();
    for (const i of [...this.inbound]) i.finish();
    const server = this.server;
    this.server = null;
    if (server) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
  }

  private shutPeer(peer: Peer): void {
    peer.closed = true;
    if (peer.backoffTimer) clearTimeout(peer.backoffTimer);
    peer.backoffTimer = null;
    const call = peer.call;
    peer.call = null;
    if (call) call.end();
    peer.queue = [];
    peer.queuedBytes = 0;
    peer.client.close();
    peer.snapClient.close();
  }

  private drop(peer: Peer, n: number): void {
    peer.stats.dropped += n;
    this.reportUnreachable(peer, false);
  }

  private reportUnreachable(peer: Peer, force: boolean): void {
    const now = performance.now();
    if (!force && now - peer.lastReport < this.o.unreachableReportMs) return;
    peer.lastReport = now;
    this.o.onUnreachable?.(peer.id);
  }

  private schedulePump(peer: Peer): void {
    if (peer.pumpScheduled) return;
    peer.pumpScheduled = true;
    setImmediate(() => {
      peer.pumpScheduled = false;
      this.pump(peer);
    });
  }

  private pump(peer: Peer): void {
    if (peer.closed || peer.backoffTimer || !peer.queue.length) return;
    const call = peer.call ?? this.openStream(peer);
    while (peer.writable && peer.queue.length) {
      let n = 0;
      let bytes = 0;
      while (n < peer.queue.length && (n === 0 || bytes + peer.queue[n]!.size <= this.o.maxBatchBytes)) bytes += peer.queue[n++]!.size;
      const batch = peer.queue.splice(0, n);
      peer.queuedBytes -= bytes;
      peer.writable = call.write({ from: this.o.id, to: peer.id, payload: encodeMessages(batch.map((q) => q.message)), messages: [] });
      peer.stats.sent += n;
      peer.stats.batches++;
    }
  }

  private openStream(peer: Peer): grpc.ClientWritableStream<MessageBatch> {
    const call = peer.client.stream(new grpc.Metadata(), {}, (err) => this.streamEnded(peer, call, err));
    peer.call = call;
    peer.writable = true;
    call.on('metadata', () => {
      if (peer.call === call) peer.backoffMs = this.o.backoffInitialMs;
    });
    call.on('drain', () => {
      if (peer.call !== call) return;
      peer.writable = true;
      this.schedulePump(peer);
    });
    call.on('error', () => {}); // reported through the callback
    return call;
  }

  private streamEnded(peer: Peer, call: grpc.ClientWritableStream<MessageBatch>, err: grpc.ServiceError | null): void {
    if (peer.call !== call || peer.closed) return;
    peer.call = null;
    peer.stats.failures++;
    const lost = peer.queue.length;
    peer.queue = [];
    peer.queuedBytes = 0;
    peer.stats.dropped += lost;
    this.o.log?.({ msg: 'raft transport: stream to peer ended', peer: peer.id, address: peer.address, error: err?.message ?? 'closed by peer', dropped: lost, retryInMs: peer.backoffMs });
    this.reportUnreachable(peer, true);
    const wait = peer.backoffMs;
    peer.backoffMs = Math.min(peer.backoffMs * 2, this.o.backoffMaxMs);
    peer.backoffTimer = setTimeout(() => {
      peer.backoffTimer = null;
    }, wait);
  }

  private startSnapshot(peer: Peer, m: Message): void {
    if (peer.snapshotInFlight) {
      // Raft does not send a second snapshot while one is in flight; a duplicate is dropped.
      peer.stats.dropped++;
      return;
    }
    peer.snapshotInFlight = true;
    this.sendSnapshot(peer, m).then(
      () => {
        peer.snapshotInFlight = false;
        peer.stats.snapshotsSent++;
        if (!peer.closed) this.o.onSnapshotStatus?.(peer.id, true);
      },
      (err: unknown) => {
        peer.snapshotInFlight = false;
        peer.stats.snapshotsFailed++;
        this.o.log?.({ msg: 'raft transport: snapshot send failed', peer: peer.id, error: (err as Error).message });
        if (peer.closed) return;
        this.reportUnreachable(peer, true);
        this.o.onSnapshotStatus?.(peer.id, false);
      },
    );
  }

  private async sendSnapshot(peer: Peer, m: Message): Promise<void> {
    const snap = m.snapshot!;
    const data = snap.data;
    const header = encodeMessages([{ ...m, snapshot: { metadata: snap.metadata, data: new Uint8Array(0) } }]);
    let call!: grpc.ClientWritableStream<SnapshotChunk>;
    const finished = new Promise<void>((ok, fail) => {
      call = peer.snapClient.sendSnapshot(new grpc.Metadata(), {}, (err, ack) => {
        if (err) fail(new Error(`snapshot to node ${peer.id} at ${peer.address}: ${err.message}`));
        else if (ack?.received !== data.length) fail(new Error(`snapshot to node ${peer.id}: peer acknowledged ${ack?.received} of ${data.length} bytes`));
        else ok();
      });
    });
    let ended = false;
    finished.then(
      () => (ended = true),
      () => (ended = true), // the rejection itself is awaited below
    );
    call.on('error', () => {}); // reported through the callback
    const chunkBytes = this.o.snapshotChunkBytes;
    let crc = 0;
    let offset = 0;
    do {
      const piece = data.subarray(offset, Math.min(offset + chunkBytes, data.length));
      crc = crc32c(piece, 0, piece.length, crc);
      const last = offset + piece.length >= data.length;
      const ok = call.write({
        from: this.o.id,
        to: peer.id,
        message: offset === 0 ? header : new Uint8Array(0),
        totalSize: data.length,
        offset,
        data: piece,
        last,
        crc32c: last ? crc : 0,
      });
      offset += piece.length;
      if (last) break;
      if (!ok) await Promise.race([new Promise((r) => call.once('drain', r)), finished]);
      if (ended || peer.closed) break;
    } while (true);
    call.end();
    await finished;
  }
}

/** A protobuf-encoded message (MessageBatch.messages, for other implementations) as a Message. */
function fromProto(p: ProtoMessage): Message {
  const type = MessageTypeValues.indexOf(p.type);
  if (type < 0) throw new Error(`unknown message type ${p.type}`);
  const m: Message = {
    type: type as MessageType,
    to: p.to,
    from: p.from,
    term: p.term,
    logTerm: p.logTerm,
    index: p.index,
    commit: p.commit,
    reject: p.reject,
    rejectHint: p.rejectHint,
    context: p.context,
    entries: p.entries.map((e) => ({ term: e.term, index: e.index, type: e.type === 'ENTRY_CONF_CHANGE' ? EntryType.ConfChange : EntryType.Normal, data: e.data })),
  };
  const s = p.snapshot;
  if (s?.metadata) {
    const cs = s.metadata.confState;
    m.snapshot = {
      metadata: {
        index: s.metadata.index,
        term: s.metadata.term,
        confState: {
          voters: cs?.voters ?? [],
          learners: cs?.learners ?? [],
          votersOutgoing: cs?.votersOutgoing ?? [],
          learnersNext: cs?.learnersNext ?? [],
          autoLeave: cs?.autoLeave ?? false,
        },
      },
      data: s.data,
    };
  }
  return m;
}
