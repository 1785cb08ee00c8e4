// `npm run bench -- raft [--kills N] [--seconds S] [--value-bytes B] [--tick-ms T] [--snapshot-interval E]`
//
// The Raft stack end to end: three member processes (test/integration/raft-process/member.js) on
// loopback with real disks, driven over their HTTP API with keep-alive agents.
// (a) puts/s and p50/p99 latency of 256-byte puts at 1, 16 and 256 concurrent clients;
// (b) leader failover: SIGKILL the leader, time until a put succeeds again, over N kills (the
//     killed member is restarted and caught up before the next kill).
// There is no baseline run here: the summary carries the etcd figures the issue names (etcd 3.4,
// three members on loopback on this machine, driven over gRPC by a Node client).
// Members run RaftNode's defaults (50 ms tick, snapshot every 10,000 entries), as the daemon does.
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { MemberProcess, foundCluster, freePortPair, http } from '../test/integration/raft-process/cluster.js';
import { waitFor } from '../test/support/wait.js';

const ETCD = { putsPerSec: { 1: 430, 16: 1310, 256: 2370 }, p99Ms: 235, failoverTargetMs: 1500 };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function leaderOf(members: MemberProcess[]): Promise<MemberProcess> {
  return waitFor('a leader', async () => {
    for (const m of members) {
      if (!m.running) continue;
      const s = await m.status().catch(() => null);
      if (s?.isLeader) return m;
    }
    return null;
  }, { timeoutMs: 30_000 });
}

/** One put, following 421 redirects and trying the other members on errors, until it succeeds. */
async function putUntilAcked(members: MemberProcess[], startPort: number, key: string, value: string, agent?: Agent): Promise<void> {
  let port = startPort;
  for (;;) {
    try {
      const r = await http(port, 'POST', `/put?key=${key}`, { body: value, agent, timeoutMs: 2000 });
      if (r.status === 200) return;
      if (r.status === 421) {
        const api = (JSON.parse(r.body) as { leaderApi: string | null }).leaderApi;
        if (api) {
          port = Number(api.split(':')[1]);
          continue;
        }
      }
    } catch {
      const up = members.filter((m) => m.running);
      const i = up.findIndex((m) => m.apiPort === port);
      port = up[(i + 1) % up.length]!.apiPort;
    }
    // No leader yet: pace the retries a little.
    await sleep(2);
  }
}

async function measurePuts(leader: MemberProcess, clients: number, seconds: number, value: string): Promise<{ puts: number; errors: number; latencies: number[]; elapsedMs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  let errors = 0;
  // A short warm-up (connections, JIT) that is not counted.
  const warmUntil = performance.now() + 500;
  const startAt = warmUntil;
  const endAt = warmUntil + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, w) => {
        for (let seq = 0; ; seq++) {
          const t0 = performance.now();
          if (t0 >= endAt) return;
          try {
            const r = await http(leader.apiPort, 'POST', `/put?key=c${clients}-${w}-${seq}`, { body: value, agent, timeoutMs: 10_000 });
            if (r.status !== 200) throw new Error(`status ${r.status}`);
            if (t0 >= startAt) latencies.push(performance.now() - t0);
          } catch {
            if (t0 >= startAt) errors++;
          }
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  latencies.sort((a, b) => a - b);
  return { puts: latencies.length, errors, latencies, elapsedMs: endAt - startAt };
}

const bench: Benchmark = {
  description: 'Raft: 3 member processes, puts/s and latency at 1/16/256 clients, leader failover after SIGKILL',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'kills', kind: 'int', default: 20, description: 'leader kills for the failover measurement' },
      { name: 'seconds', kind: 'int', default: 5, description: 'seconds measured at each concurrency' },
      { name: 'value-bytes', kind: 'int', default: 256, description: 'size of each put value' },
      { name: 'tick-ms', kind: 'int', default: 50, description: "the members' Raft tick (RaftNode's default; elections take 10-20 ticks)" },
      { name: 'snapshot-interval', kind: 'int', default: 10_000, description: "entries between the members' snapshots (RaftNode's default, which the daemon uses)" },
    ]);
    const kills = flags.kills as number;
    const seconds = flags.seconds as number;
    const value = 'x'.repeat(flags['value-bytes'] as number);

    const root = mkdtempSync(join(tmpdir(), 'raftbench-'));
    const taken = new Set<number>();
    const members: MemberProcess[] = [];
    try {
      for (const id of [1, 2, 3]) members.push(new MemberProcess(id, join(root, String(id)), await freePortPair(taken), ['--tick-ms', String(flags['tick-ms']), '--snapshot-interval', String(flags['snapshot-interval'])]));
      await foundCluster(members);

      const throughput: Record<number, { putsPerSec: number; p50Ms: number; p99Ms: number }> = {};
      for (const clients of [1, 16, 256]) {
        const leader = await leaderOf(members);
        const termBefore = (await leader.status()).term;
        const r = await measurePuts(leader, clients, seconds, value);
        // Elections during the run (a loaded cluster should have none): how far the term moved.
        const termAfter = (await (await leaderOf(members)).status()).term;
        const rec = { putsPerSec: Math.round((r.puts * 1000) / r.elapsedMs), p50Ms: round1(percentile(r.latencies, 50)), p99Ms: round1(percentile(r.latencies, 99)) };
        throughput[clients] = rec;
        emit({ measurement: 'puts', clients, valueBytes: value.length, seconds, ...rec, errors: r.errors, termChanges: termAfter - termBefore, etcdPutsPerSec: ETCD.putsPerSec[clients as 1 | 16 | 256] });
      }

      const failovers: number[] = [];
      for (let k = 0; k < kills; k++) {
        const leader = await leaderOf(members);
        const survivor = members.find((m) => m !== leader)!;
        const t0 = performance.now();
        await leader.kill();
        await putUntilAcked(members, survivor.apiPort, `failover-${k}`, value);
        const ms = performance.now() - t0;
        failovers.push(ms);
        emit({ measurement: 'failover', kill: k + 1, killed: leader.id, ms: round1(ms) });
        // Back to three caught-up members before the next kill.
        leader.start();
        const target = (await (await leaderOf(members)).status()).commit;
        await waitFor(`member ${leader.id} to catch up`, async () => {
          const s = await leader.status().catch(() => null);
          return s !== null && s.leader !== 0 && s.applied >= target;
        }, { timeoutMs: 30_000 });
      }
      const sorted = [...failovers].sort((a, b) => a - b);
      emit({
        summary: true,
        putsPerSec: { 1: throughput[1]?.putsPerSec, 16: throughput[16]?.putsPerSec, 256: throughput[256]?.putsPerSec },
        p99Ms: { 1: throughput[1]?.p99Ms, 16: throughput[16]?.p99Ms, 256: throughput[256]?.p99Ms },
        failover: { kills, p50Ms: round1(percentile(sorted, 50)), maxMs: round1(sorted.at(-1) ?? NaN), meanMs: round1(sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1)) },
        etcd: ETCD,
      });
    } finally {
      for (const m of members) await m.kill();
      rmSync(root, { recursive: true, force: true });
    }
  },
};

export default bench;
