// A standalone Raft member process for tests and benchmarks that need real process deaths
// (SIGKILL) and real disks: a RaftNode with a key-value state machine, and a tiny HTTP client API
// on 127.0.0.1.
//
//   node dist/test/integration/raft-process/member.js --id N --dir D --raft-port P --api-port Q
//        [--bootstrap] [--join id=addr,...]
//
// API (members find each other's API port by convention: api port = raft port + API_PORT_OFFSET):
//   POST /put?key=k        body = value; 200 once applied here, 421 {leader, leaderApi} if not leader
//   GET  /get?key=k        value after a read barrier (linearizable); &local=1 reads this member's
//                          state as is; 404 if absent
//   GET  /dump             this member's whole state, as is: {applied, data: {k: v}}
//   GET  /status           {id, leader, isLeader, applied, commit, term, members}
//   POST /add?id=&addr=    adds a member (leader only)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { RaftNode, linkedTransport, NotLeaderError, type Member, type StateMachine } from '../../../manager/raft/node.js';

const API_PORT_OFFSET = 1000;

/** put key→value, proposed as JSON {k, v}; snapshots are the whole map as JSON pairs. */
class KvStateMachine implements StateMachine {
  data = new Map<string, string>();
  apply(entry: Uint8Array): void {
    const { k, v } = JSON.parse(Buffer.from(entry).toString()) as { k: string; v: string };
    this.data.set(k, v);
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify([...this.data]));
  }
  restore(snap: Uint8Array): void {
    this.data = new Map(snap.length ? (JSON.parse(Buffer.from(snap).toString()) as [string, string][]) : []);
  }
}

function parseJoin(spec: string | undefined): Member[] {
  if (!spec) return [];
  return spec.split(',').map((part) => {
    const [id, addr] = part.split('=');
    if (!id || !addr || !Number.isInteger(Number(id))) throw new Error(`bad --join member "${part}": want id=host:port`);
    return { id: Number(id), addr };
  });
}

function apiAddrOf(raftAddr: string): string {
  const i = raftAddr.lastIndexOf(':');
  return `${raftAddr.slice(0, i)}:${Number(raftAddr.slice(i + 1)) + API_PORT_OFFSET}`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
  res.end(text);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      dir: { type: 'string' },
      'raft-port': { type: 'string' },
      'api-port': { type: 'string' },
      bootstrap: { type: 'boolean', default: false },
      join: { type: 'string' },
      'tick-ms': { type: 'string', default: '20' },
      'snapshot-interval': { type: 'string', default: '2000' },
    },
  });
  const id = Number(values.id);
  const raftPort = Number(values['raft-port']);
  const apiPort = Number(values['api-port']);
  if (!Number.isInteger(id) || id <= 0) throw new Error(`bad --id "${values.id}"`);
  if (!values.dir) throw new Error('--dir is required');
  if (!Number.isInteger(raftPort) || raftPort <= 0) throw new Error(`bad --raft-port "${values['raft-port']}"`);
  if (!Number.isInteger(apiPort) || apiPort <= 0) throw new Error(`bad --api-port "${values['api-port']}"`);

  let node: RaftNode | null = null;
  const transport = linkedTransport(() => node, {
    id,
    channelCredentials: grpc.credentials.createInsecure(),
    serverCredentials: grpc.ServerCredentials.createInsecure(),
    backoffInitialMs: 20,
    backoffMaxMs: 200,
  });
  const addr = `127.0.0.1:${await transport.listen(`127.0.0.1:${raftPort}`)}`;
  const sm = new KvStateMachine();
  const raft = await RaftNode.open({
    id,
    dataDir: values.dir,
    transport,
    stateMachine: sm,
    bootstrapAddr: values.bootstrap ? addr : undefined,
    join: parseJoin(values.join),
    tickMs: Number(values['tick-ms']),
    snapshotInterval: Number(values['snapshot-interval']),
    seed: id,
    onFatal: (err) => {
      process.stderr.write(`member ${id}: fatal: ${err.message}\n`);
      process.exit(1);
    },
  });
  node = raft;
  raft.start();

  const notLeader = (res: ServerResponse, e: NotLeaderError) => {
    const leaderAddr = raft.memberList().find((m) => m.id === e.leader)?.addr;
    send(res, 421, { error: e.message, leader: e.leader, leaderApi: leaderAddr ? apiAddrOf(leaderAddr) : null });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://member');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'POST /put') {
      const key = url.searchParams.get('key');
      const value = (await readBody(req)).toString();
      if (!key) return send(res, 400, { error: 'missing ?key=' });
      await raft.propose(Buffer.from(JSON.stringify({ k: key, v: value })));
      return send(res, 200, { ok: true });
    }
    if (route === 'GET /get') {
      const key = url.searchParams.get('key');
      if (!key) return send(res, 400, { error: 'missing ?key=' });
      if (url.searchParams.get('local') !== '1') await raft.readBarrier();
      const v = sm.data.get(key);
      return v === undefined ? send(res, 404, { error: `no key "${key}"` }) : send(res, 200, v);
    }
    if (route === 'GET /dump') return send(res, 200, { applied: raft.applied, data: Object.fromEntries(sm.data) });
    if (route === 'GET /status') {
      return send(res, 200, { id, leader: raft.leader, isLeader: raft.isLeader, applied: raft.applied, commit: raft.commitIndex, term: raft.currentTerm, members: raft.memberList() });
    }
    if (route === 'POST /add') {
      const newId = Number(url.searchParams.get('id'));
      const newAddr = url.searchParams.get('addr');
      if (!Number.isInteger(newId) || newId <= 0 || !newAddr) return send(res, 400, { error: `bad ?id=${url.searchParams.get('id')}&addr=${newAddr}` });
      await raft.addMember(newId, newAddr);
      return send(res, 200, { ok: true });
    }
    send(res, 404, { error: `no route ${route}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof NotLeaderError) return notLeader(res, e);
      if (!res.headersSent) send(res, 503, { error: e instanceof Error ? e.message : String(e) });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(apiPort, '127.0.0.1', resolve);
  });
  process.stdout.write(`member ${id} ready raft=${addr} api=127.0.0.1:${apiPort}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`member: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
