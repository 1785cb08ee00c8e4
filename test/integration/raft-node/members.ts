// Members of a Raft cluster on loopback for the node runner's integration tests: each with its
// own WAL directory, gRPC transport and a state machine that records what it applied.
import * as grpc from '@grpc/grpc-js';
import { RaftNode, linkedTransport, type StateMachine } from '../../../manager/raft/node.js';
import type { RaftTransport } from '../../../manager/raft/transport/index.js';

/** A state machine that records what it applied, and snapshots as a JSON list. */
export class Log implements StateMachine {
  items: string[] = [];
  apply(data: Uint8Array): void {
    this.items.push(Buffer.from(data).toString());
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = data.length ? (JSON.parse(Buffer.from(data).toString()) as string[]) : [];
  }
}

export interface Member {
  id: number;
  dir: string;
  addr: string;
  node: RaftNode;
  transport: RaftTransport;
  sm: Log;
}

export async function startMember(id: number, dir: string, port: number, bootstrap: boolean, snapshotInterval = 10_000, join: { id: number; addr: string }[] = []): Promise<Member> {
  let node: RaftNode | null = null;
  const transport = linkedTransport(() => node, {
    id,
    channelCredentials: grpc.credentials.createInsecure(),
    serverCredentials: grpc.ServerCredentials.createInsecure(),
    backoffInitialMs: 20,
    backoffMaxMs: 200,
  });
  const bound = await transport.listen(`127.0.0.1:${port}`);
  const addr = `127.0.0.1:${bound}`;
  const sm = new Log();
  node = await RaftNode.open({ id, dataDir: dir, transport, stateMachine: sm, bootstrapAddr: bootstrap ? addr : undefined, join, tickMs: 20, snapshotInterval, seed: id });
  node.start();
  return { id, dir, addr, node, transport, sm };
}

export async function stopMember(m: Member): Promise<void> {
  await m.node.stop();
  await m.transport.close();
}

export const leaderOf = (ms: Member[]) => ms.find((m) => m.node.isLeader);
