// RaftTransport over real gRPC on loopback: batches arrive intact and in order per peer, a
// multi-MiB snapshot travels in chunks beside the message stream, a peer that goes away is
// reported unreachable and messages resume when it comes back, and a peer that stops reading
// cannot make the sender's memory grow without bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RaftTransport, type RaftTransportOptions } from '../../../manager/raft/transport/transport.js';
import { decodeMessages, encodeMessages } from '../../../manager/raft/transport/wire.js';
import { EntryType, MessageType, type Message } from '../../../manager/raft/types.js';
import { RaftService, type MessageBatch, type RaftHandlers } from '../../../proto/gen/raft.js';

function seededBytes(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function msg(from: number, to: number, seq: number, over: Partial<Message> = {}): Message {
  return {
    type: MessageType.MsgApp,
    from,
    to,
    term: 3,
    logTerm: 3,
    index: seq,
    commit: seq,
    entries: [],
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    ...over,
  };
}

/** A varied, deterministic message stream: appends with binary entries, heartbeats, votes. */
function traffic(from: number, to: number, count: number): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    const kind = i % 4;
    if (kind === 0) {
      out.push(msg(from, to, i, { entries: [0, 1, 2].map((k) => ({ term: 3, index: i * 3 + k + 1, type: k === 2 ? EntryType.ConfChange : EntryType.Normal, data: seededBytes(i * 7 + k, (i * 13 + k) % 3000) })) }));
    } else if (kind === 1) {
      out.push(msg(from, to, i, { type: MessageType.MsgHeartbeat, context: seededBytes(i, 8) }));
    } else if (kind === 2) {
      out.push(msg(from, to, i, { type: MessageType.MsgAppResp, reject: true, rejectHint: 2 ** 40 + i, logTerm: Number.MAX_SAFE_INTEGER }));
    } else {
      out.push(msg(from, to, i, { type: MessageType.MsgPreVote, term: 2 ** 33 }));
    }
  }
  return out;
}

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Node {
  t: RaftTransport;
  port: number;
  got: Message[];
  unreachable: number[];
  snapStatus: Array<[number, boolean]>;
}

async function startNode(id: number, port = 0, extra: Partial<RaftTransportOptions> = {}): Promise<Node> {
  const node: Node = { t: null as unknown as RaftTransport, port: 0, got: [], unreachable: [], snapStatus: [] };
  node.t = new RaftTransport({
    id,
    channelCredentials: grpc.credentials.createInsecure(),
    serverCredentials: grpc.ServerCredentials.createInsecure(),
    onMessage: (m) => node.got.push(m),
    onUnreachable: (p) => node.unreachable.push(p),
    onSnapshotStatus: (p, ok) => node.snapStatus.push([p, ok]),
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    ...extra,
  });
  node.port = await node.t.listen(`127.0.0.1:${port}`);
  return node;
}

test('wire encoding round-trips every field and refuses garbage', () => {
  const ms = [
    ...traffic(1, 2, 8),
    msg(1, 2, 9, {
      type: MessageType.MsgSnap,
      snapshot: { metadata: { index: 77, term: 5, confState: { voters: [1, 2], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: seededBytes(1, 100) },
    }),
  ];
  assert.deepEqual(decodeMessages(encodeMessages(ms)), ms);
  assert.throws(() => decodeMessages(seededBytes(3, 64)));
  const good = encodeMessages(ms);
  assert.throws(() => decodeMessages(good.subarray(0, good.length - 1)), /truncated/);
});

test('three transports exchange batches intact and in order per peer', async (t) => {
  const nodes = await Promise.all([1, 2, 3].map((id) => startNode(id)));
  t.after(() => Promise.all(nodes.map((n) => n.t.close())));
  for (const a of nodes) for (const b of nodes) if (a !== b) a.t.addPeer(b.t.id, `127.0.0.1:${b.port}`);

  const sent = new Map<string, Message[]>();
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const ms = traffic(a.t.id, b.t.id, 1500);
      sent.set(`${a.t.id}->${b.t.id}`, ms);
    }
  }
  // Sent in slices over several turns of the event loop, as a Raft loop would.
  for (let off = 0; off < 1500; off += 100) {
    for (const a of nodes) for (const b of nodes) if (a !== b) a.t.send(sent.get(`${a.t.id}->${b.t.id}`)!.slice(off, off + 100));
    await new Promise((r) => setImmediate(r));
  }
  await until(() => nodes.every((n) => n.got.length === 3000), 'all messages');
  for (const b of nodes) {
    for (const a of nodes) {
      if (a === b) continue;
      assert.deepEqual(b.got.filter((m) => m.from === a.t.id), sent.get(`${a.t.id}->${b.t.id}`), `${a.t.id}->${b.t.id}`);
    }
    assert.deepEqual(b.unreachable, []);
  }
  const stats = nodes[0]!.t.peerStats(2)!;
  assert.equal(stats.sent, 1500);
  assert.equal(stats.dropped, 0);
  assert.ok(stats.batches < 1500, `messages are batched (${stats.batches} batches)`);
});

test('a multi-MiB snapshot travels in chunks while the message stream keeps flowing', async (t) => {
  const a = await startNode(1);
  const b = await startNode(2);
  t.after(() => Promise.all([a.t.close(), b.t.close()]));
  a.t.addPeer(2, `127.0.0.1:${b.port}`);

  const data = seededBytes(42, 6 * 1024 * 1024 + 123);
  const cs = { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const snapMsg = msg(1, 2, 0, { type: MessageType.MsgSnap, snapshot: { metadata: { index: 5000, term: 9, confState: cs }, data } });
  a.t.send([snapMsg]);
  const beats = Array.from({ length: 200 }, (_, i) => msg(1, 2, i, { type: MessageType.MsgHeartbeat }));
  for (const m of beats) a.t.send([m]);

  await until(() => a.snapStatus.length === 1 && b.got.length === 201, 'snapshot and heartbeats');
  assert.deepEqual(a.snapStatus, [[2, true]]);
  const got = b.got.find((m) => m.type === MessageType.MsgSnap)!;
  assert.deepEqual(got.snapshot!.metadata, snapMsg.snapshot!.metadata);
  assert.equal(got.snapshot!.data.length, data.length);
  assert.ok(Buffer.from(got.snapshot!.data).equals(Buffer.from(data)), 'snapshot bytes intact');
  assert.deepEqual(b.got.filter((m) => m.type === MessageType.MsgHeartbeat), beats);
  assert.equal(a.t.peerStats(2)!.snapshotsSent, 1);
});

test('a snapshot to a peer that is down fails and is reported', async (t) => {
  const a = await startNode(1);
  const b = await startNode(2);
  const port = b.port;
  await b.t.close();
  t.after(() => a.t.close());
  a.t.addPeer(2, `127.0.0.1:${port}`);
  a.t.send([msg(1, 2, 0, { type: MessageType.MsgSnap, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: seededBytes(1, 10) } })]);
  await until(() => a.snapStatus.length === 1, 'snapshot status');
  assert.deepEqual(a.snapStatus, [[2, false]]);
  assert.ok(a.unreachable.includes(2));
});

test('a peer that goes away is reported unreachable; messages resume when it returns', async (t) => {
  const a = await startNode(1);
  let b = await startNode(2);
  t.after(() => Promise.all([a.t.close(), b.t.close()]));
  a.t.addPeer(2, `127.0.0.1:${b.port}`);

  a.t.send([msg(1, 2, 1)]);
  await until(() => b.got.length === 1, 'first message');

  const port = b.port;
  await b.t.close();
  await until(() => a.unreachable.includes(2), 'unreachable report');
  assert.ok(a.t.peerStats(2)!.failures >= 1);

  // While it is down, sends are dropped (not queued without bound) and reported.
  for (let i = 0; i < 50; i++) a.t.send([msg(1, 2, 100 + i)]);
  assert.ok(a.t.peerStats(2)!.queuedBytes <= 50 * 200);

  b = await startNode(2, port);
  // Raft keeps sending (heartbeats); so does the test, until messages get through again.
  let seq = 1000;
  await until(() => {
    a.t.send([msg(1, 2, seq++)]);
    return b.got.length >= 5;
  }, 'messages after the peer returned');
  const idx = b.got.map((m) => m.index);
  assert.deepEqual(idx, [...idx].sort((x, y) => x - y), 'still in order');
  assert.ok(idx.every((i) => i >= 1000), 'messages sent after the restart');
});

test('a peer that stops reading: the queue stays bounded, drops are reported, flow resumes', async (t) => {
  // A bare Raft service that pauses its stream, so HTTP/2 flow control pushes back on the sender.
  const received: Message[] = [];
  let paused: grpc.ServerReadableStream<MessageBatch, unknown> | null = null;
  const handlers: RaftHandlers = {
    stream: (call, cb) => {
      call.sendMetadata(new grpc.Metadata());
      paused = call;
      call.pause();
      call.on('data', (b: MessageBatch) => received.push(...decodeMessages(b.payload)));
      call.on('end', () => cb(null, {}));
      call.on('error', () => {});
    },
    sendSnapshot: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  };
  const server = new grpc.Server(RaftTransport.serverOptions());
  server.addService(RaftService, handlers);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => server.forceShutdown());

  const maxPendingBytes = 256 * 1024;
  const a = await startNode(1, 0, { maxPendingBytes, maxBatchBytes: 64 * 1024, unreachableReportMs: 0 });
  t.after(() => a.t.close());
  a.t.addPeer(2, `127.0.0.1:${port}`);

  const payload = seededBytes(5, 16 * 1024);
  let seq = 0;
  let maxQueued = 0;
  // 32 MiB offered; far more than the bound plus what HTTP/2 windows can absorb.
  for (let round = 0; round < 200; round++) {
    a.t.send(Array.from({ length: 10 }, () => msg(1, 2, seq++, { entries: [{ term: 3, index: seq, type: EntryType.Normal, data: payload }] })));
    maxQueued = Math.max(maxQueued, a.t.peerStats(2)!.queuedBytes);
    await new Promise((r) => setImmediate(r));
  }
  const stats = a.t.peerStats(2)!;
  assert.ok(stats.dropped > 0, 'messages beyond the bound are dropped');
  assert.ok(maxQueued <= maxPendingBytes, `queue peaked at ${maxQueued} bytes`);
  assert.ok(a.unreachable.includes(2), 'drops are reported as unreachable');
  assert.ok(stats.sent + stats.dropped + stats.queuedBytes / (16 * 1024 + 100) >= 1999);

  paused!.resume();
  const last = seq;
  await until(() => {
    a.t.send([msg(1, 2, seq++)]);
    return received.some((m) => m.index >= last);
  }, 'flow after the reader resumed');
  const idx = received.map((m) => m.index);
  assert.deepEqual(idx, [...idx].sort((x, y) => x - y), 'what arrives is in order');
});
