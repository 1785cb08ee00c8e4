// A cluster across lab hosts, as a user builds one: a shoald per host (its own network namespace,
// data root and socket), `swarm init` on h1, a worker and a manager joining with tokens over the
// lab network with mutual TLS, and `node ls` agreeing on every manager.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Lab } from '../../deploy/labkit/lab.js';
import { repo, testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';
import { existsSync } from 'node:fs';

function shoal(socket: string, ...args: string[]) {
  return spawnSync(`${repo}bin/shoal`, ['-H', `unix://${socket}`, ...args], { encoding: 'utf8' });
}

test('init, join as worker and as manager, node ls on both managers, Ready nodes and a dead one Down; bad tokens are refused', async (t) => {
  const lab = new Lab(testLabName('swarm'));
  const daemons: ChildProcess[] = [];
  t.after(async () => {
    for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    await lab.down();
  });
  await lab.up({ hosts: 3 });
  const sock = (h: string) => lab.host(h).socket;
  for (const h of ['h1', 'h2', 'h3']) {
    const d = lab.spawn(h, ['node', `${repo}dist/daemon/main.js`, '--data-root', `${lab.host(h).dataDir}/data`, '-H', `unix://${sock(h)}`, '--metrics-addr', ''], { stdio: 'ignore' });
    daemons.push(d);
  }
  for (const h of ['h1', 'h2', 'h3']) await waitFor(`shoald on ${h}`, () => existsSync(sock(h)) && shoal(sock(h), 'info').status === 0);
  const addr = (h: string) => lab.host(h).address;

  const init = shoal(sock('h1'), 'swarm', 'init', '--advertise-addr', addr('h1'));
  assert.equal(init.status, 0, init.stderr);
  assert.match(init.stdout, /^Swarm initialized: current node \(\w+\) is now a manager\./);
  const worker = shoal(sock('h1'), 'swarm', 'join-token', '-q', 'worker').stdout.trim();
  const manager = shoal(sock('h1'), 'swarm', 'join-token', '-q', 'manager').stdout.trim();
  assert.match(worker, /^SWMTKN-1-/);

  // A forged secret with the right CA digest is refused, and changes nothing.
  const forged = worker.replace(/-[0-9a-z]{25}$/, '-' + '0'.repeat(25));
  const bad = shoal(sock('h2'), 'swarm', 'join', '--token', forged, '--advertise-addr', addr('h2'), addr('h1'));
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /invalid join token/);

  const j2 = shoal(sock('h2'), 'swarm', 'join', '--token', worker, '--advertise-addr', addr('h2'), addr('h1'));
  assert.equal(j2.stdout, 'This node joined a swarm as a worker.\n', j2.stderr);
  const j3 = shoal(sock('h3'), 'swarm', 'join', '--token', manager, '--advertise-addr', addr('h3'), addr('h1'));
  assert.equal(j3.stdout, 'This node joined a swarm as a manager.\n', j3.stderr);

  const rows = (h: string) => shoal(sock(h), 'node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}').stdout.trim().split('\n').map((l) => l.trim()).sort();
  // Reachability is the leader's view of Raft activity, written to the store: await it settling
  // rather than racing the new member's first heartbeat answers.
  const expected = ['h1 Leader', 'h2', 'h3 Reachable'].join();
  await waitFor('h1 to list h3 as a Reachable manager', () => rows('h1').join() === expected);
  await waitFor('the second manager to list the same', () => rows('h3').join() === expected);
  // Every node's agent holds a session: all three are Ready.
  const status = (h: string) => shoal(sock(h), 'node', 'ls', '--format', '{{.Hostname}} {{.Status}}').stdout.trim().split('\n').sort();
  await waitFor('every node Ready', () => status('h1').join() === 'h1 Ready,h2 Ready,h3 Ready');
  const onWorker = shoal(sock('h2'), 'node', 'ls');
  assert.notEqual(onWorker.status, 0);
  assert.match(onWorker.stderr, /not a swarm manager/);
  const again = shoal(sock('h1'), 'swarm', 'init');
  assert.match(again.stderr, /already part of a swarm/);
  // A worker whose shoald dies stops heartbeating and is seen Down.
  daemons[1]!.kill('SIGKILL');
  await waitFor('h2 to be seen Down', () => status('h1').join() === 'h1 Ready,h2 Down,h3 Ready');
});
