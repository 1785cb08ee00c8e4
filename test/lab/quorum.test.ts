// A cluster that lost its quorum (issue #4), in the lab: 4 hosts, managers h1 h2 h3, worker h4.
// SIGKILLing two managers leaves h1 without a leader: `node ls` and `service create` there fail
// with Docker's message. `swarm init --force-new-cluster` on h1 makes it the single manager of
// the same cluster: the service created before is still there, new ones can be created, h2 and
// h3 show Down and Unreachable, the worker h4 reconnects. h2 started again with its old data does
// not disturb the new cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from '../../deploy/labkit/lab.js';
import { cli, formCluster, killDaemon, startDaemon } from '../../deploy/labkit/cluster.js';
import { testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';

const NO_LEADER = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

test('lost quorum: writes and reads fail with Docker\'s message; swarm init --force-new-cluster on a survivor recovers the cluster', async (t) => {
  const lab = new Lab(testLabName('quorum'));
  t.after(async () => {
    await lab.down();
  });
  await lab.up({ hosts: 4 });
  await formCluster(lab, 3, () => {});
  const view = (h: string) => {
    const r = cli(lab, h, ['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.ManagerStatus}}']);
    return r.status === 0 ? r.stdout.trim().split('\n').map((l) => l.trim()).sort() : [];
  };
  const services = () => cli(lab, 'h1', ['service', 'ls', '--format', '{{.Name}}']).stdout.trim().split('\n').sort();
  // No image is needed: a service of 0 replicas is state in the store only.
  const create = (name: string) => cli(lab, 'h1', ['service', 'create', '--detach', '--replicas', '0', '--name', name, 'busybox']);

  await waitFor('4 Ready nodes, a Leader and two Reachable managers', () => {
    const rows = view('h1');
    return rows.filter((r) => r.includes(' Ready')).length === 4 && rows.filter((r) => r.endsWith(' Reachable')).length === 2 && rows.some((r) => r.endsWith(' Leader'));
  });
  assert.equal(create('before').status, 0);

  await killDaemon(lab, 'h2');
  await killDaemon(lab, 'h3');
  await waitFor('node ls on h1 to say the swarm has no leader', () => {
    const r = cli(lab, 'h1', ['node', 'ls']);
    return r.status !== 0 && r.stderr.includes(NO_LEADER);
  }, { timeoutMs: 30_000 });
  const refused = create('refused');
  assert.notEqual(refused.status, 0);
  assert.ok(refused.stderr.includes(NO_LEADER), `service create says why: ${refused.stderr}`);

  const forced = cli(lab, 'h1', ['swarm', 'init', '--force-new-cluster']);
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stdout, /Swarm initialized: current node \(\w+\) is now a manager/);
  assert.match(forced.stdout, new RegExp(`shoal swarm join --token SWMTKN-\\S+ ${lab.host('h1').address.replace(/\./g, '\\.')}:2377`));

  assert.equal(create('after').status, 0);
  assert.deepEqual(services(), ['after', 'before']);
  await waitFor('h2 and h3 Down and Unreachable, h1 the Leader, the worker h4 Ready', () => {
    const rows = view('h1');
    return rows.includes('h2 Down Unreachable') && rows.includes('h3 Down Unreachable') && rows.includes('h1 Ready Leader') && rows.includes('h4 Ready');
  }, { timeoutMs: 30_000 });

  // A removed manager comes back with its old data: the new cluster keeps its leader and writes.
  await startDaemon(lab, 'h2');
  assert.equal(create('later').status, 0);
  assert.ok(view('h1').includes('h1 Ready Leader'));
  assert.deepEqual(services(), ['after', 'before', 'later']);
});
