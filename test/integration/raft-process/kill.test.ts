// Three member processes on loopback with real disks, killed with SIGKILL one at a time (the leader
// included) while writers keep putting unique keys. A put acknowledged by the cluster must survive
// every kill and restart, on every member, and the members must end with the same state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../support/wait.js';
import { MemberProcess, foundCluster, freePortPair, http, type Status } from './cluster.js';
import { mulberry32 as prng } from '../../support/prng.js';

const SEED = 0x5e0a1;
const ROUNDS = 6;
const WRITERS = 4;


async function statusOrNull(m: MemberProcess): Promise<Status | null> {
  if (!m.running) return null;
  return m.status().catch(() => null);
}

async function currentLeader(members: MemberProcess[]): Promise<MemberProcess> {
  return waitFor('a leader among the running members', async () => {
    for (const m of members) {
      const s = await statusOrNull(m);
      if (s?.isLeader) return m;
    }
    return null;
  });
}

test(`acknowledged puts survive ${ROUNDS} SIGKILLs of members (leader included; seed ${SEED})`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'raftproc-'));
  const taken = new Set<number>();
  const members: MemberProcess[] = [];
  for (const id of [1, 2, 3]) members.push(new MemberProcess(id, join(root, String(id)), await freePortPair(taken)));
  const [m1] = members as [MemberProcess, MemberProcess, MemberProcess];
  let writing = true;
  const writers: Promise<void>[] = [];
  t.after(async () => {
    writing = false;
    await Promise.allSettled(writers);
    for (const m of members) await m.kill();
    rmSync(root, { recursive: true, force: true });
  });
  const explain = () => members.map((m) => `member ${m.id} stderr: ${m.stderr || '(empty)'}`).join('\n');

  // Member 1 founds the cluster; the others join through its admin endpoint.
  await foundCluster(members).catch((e: Error) => {
    throw new Error(`${e.message}\n${explain()}`);
  });

  // Writers: unique keys, sent to the member believed to lead, following 421 redirects.
  const acked = new Set<string>();
  for (let w = 0; w < WRITERS; w++) {
    writers.push(
      (async () => {
        let target = m1.apiPort;
        for (let seq = 0; writing; seq++) {
          const key = `w${w}-${seq}`;
          let ok = false;
          try {
            const r = await http(target, 'POST', `/put?key=${key}`, { body: key, timeoutMs: 2000 });
            if (r.status === 200) {
              acked.add(key);
              ok = true;
            } else if (r.status === 421) {
              const api = (JSON.parse(r.body) as { leaderApi: string | null }).leaderApi;
              if (api) target = Number(api.split(':')[1]);
            }
          } catch {
            // The target died or hung: try another member.
            const i = members.findIndex((m) => m.apiPort === target);
            target = members[(i + 1) % members.length]!.apiPort;
          }
          // Pace retries so a leaderless moment does not become a busy loop.
          if (!ok) await sleep(20);
        }
      })(),
    );
  }

  const random = prng(SEED);
  let leaderKills = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const before = acked.size;
    await waitFor(`writes to progress before round ${round}`, () => acked.size >= before + 30, { timeoutMs: 30_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
    const leader = await currentLeader(members);
    // The first round always kills the leader; the others pick at random.
    const victim = round === 0 ? leader : members[Math.floor(random() * members.length)]!;
    if (victim === leader) leaderKills++;
    await victim.kill();

    // Two of three keep a quorum: writes go on without the victim.
    const during = acked.size;
    await waitFor(`writes to progress without member ${victim.id} (round ${round})`, () => acked.size >= during + 20, { timeoutMs: 30_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });

    victim.start();
    const target = (await (await currentLeader(members)).status()).commit;
    await waitFor(`member ${victim.id} to rejoin and catch up (round ${round})`, async () => {
      const s = await statusOrNull(victim);
      return s !== null && s.leader !== 0 && s.applied >= target;
    }, { timeoutMs: 30_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${explain()}`);
    });
  }
  assert.ok(leaderKills >= 1);

  writing = false;
  await Promise.all(writers);
  assert.ok(acked.size > 0, 'no put was ever acknowledged');

  // Every member up; once the writes have quiesced they must have applied the same log.
  const statuses = await waitFor('all members to agree on leader and applied index', async () => {
    const ss = await Promise.all(members.map((m) => m.status()));
    const same = ss.every((s) => s.leader !== 0 && s.leader === ss[0]!.leader && s.applied === ss[0]!.applied && s.commit === s.applied);
    return same ? ss : null;
  });
  assert.equal(new Set(statuses.map((s) => s.leader)).size, 1);

  const dumps = await Promise.all(members.map((m) => m.dump()));
  for (const [i, d] of dumps.entries()) {
    const missing = [...acked].filter((k) => d.data[k] !== k);
    assert.deepEqual(missing.slice(0, 10), [], `member ${members[i]!.id} lost ${missing.length} of ${acked.size} acknowledged puts`);
  }
  for (const d of dumps.slice(1)) assert.deepEqual(d.data, dumps[0]!.data, 'members disagree on the state');
  t.diagnostic(`acknowledged puts: ${acked.size}; keys on each member: ${Object.keys(dumps[0]!.data).length}; leader kills: ${leaderKills}`);
});
