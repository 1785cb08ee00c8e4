// Manager high availability in the lab: 5 hosts, 3 managers. Killing the leader's shoald
// (SIGKILL) elects another leader; `node ls` through another manager shows the old one Down and
// Unreachable; started again with its data, it comes back Ready and Reachable. Twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from '../../deploy/labkit/lab.js';
import { cli, formCluster, killDaemon, startDaemon } from '../../deploy/labkit/cluster.js';
import { testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';

test('5 hosts, 3 managers: the cluster survives its leader being killed, twice', async (t) => {
  const lab = new Lab(testLabName('ha'));
  t.after(async () => {
    await lab.down();
  });
  await lab.up({ hosts: 5 });
  await formCluster(lab, 3, () => {});
  const view = (h: string) => {
    const r = cli(lab, h, ['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.ManagerStatus}}']);
    return r.status === 0 ? r.stdout.trim().split('\n').map((l) => l.trim()).sort() : [];
  };
  const leaderIn = (rows: string[]) => rows.find((r) => r.endsWith(' Leader'))?.split(' ')[0];

  const initial = await waitFor('5 Ready nodes, one Leader and two Reachable', () => {
    const rows = view('h1');
    return rows.filter((r) => r.includes(' Ready')).length === 5 && rows.filter((r) => r.endsWith('Reachable')).length === 2 && leaderIn(rows) ? rows : null;
  });
  let leader = leaderIn(initial)!;
  for (let round = 0; round < 2; round++) {
    await killDaemon(lab, leader);
    const other = ['h1', 'h2', 'h3'].find((h) => h !== leader)!;
    const after = await waitFor(`a new leader, and ${leader} Down and Unreachable`, () => {
      const rows = view(other);
      const next = leaderIn(rows);
      return next && next !== leader && rows.includes(`${leader} Down Unreachable`) ? rows : null;
    }, { timeoutMs: 30_000 });
    const next = leaderIn(after)!;
    await startDaemon(lab, leader);
    await waitFor(`${leader} to come back Ready and Reachable`, () => view(next).includes(`${leader} Ready Reachable`), { timeoutMs: 30_000 });
    // Workers whose session was with the killed leader reconnect to another manager; wait for all.
    let last: string[] = [];
    await waitFor(() => `all 5 nodes Ready again (last seen: ${last.join(', ')})`, () => (last = view(next)).filter((r) => r.includes(' Ready')).length === 5, { timeoutMs: 30_000 });
    leader = next;
  }
  // The leader's /metrics: Raft gauges and nodes by state, read from its store at scrape time.
  const addr = lab.host(leader).address;
  const r = await lab.exec(leader, ['node', '-e', `fetch('http://${addr}:9323/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`]);
  assert.match(r.stdout, /^shoal_nodes\{state="ready"\} 5$/m);
  assert.match(r.stdout, /^shoal_rpc_duration_seconds_count\{method="Control\/listNodes",code="0"\} [1-9]\d*$/m, 'node ls calls are timed');
  assert.match(r.stdout, /^shoal_raft_proposals_total\{result="committed"\} [1-9]\d*$/m, 'the leader proposed and committed transactions');
  const term = Number(/^shoal_raft_term (\d+)$/m.exec(r.stdout)?.[1]);
  assert.ok(term >= 3, `two leader changes raise the term past 2 (got ${term})`);
});
