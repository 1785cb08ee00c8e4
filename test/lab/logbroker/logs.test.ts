// `shoal service logs` over real hosts: h1 leads, h2 is a follower manager, h3 a worker; every
// task is a real runc container whose output conmon logs on its own host. The leader gathers the
// lines from the three hosts; a follower forwards the CLI's stream to it; a worker's daemon has
// no logs to serve; a host whose shoald was SIGKILLed makes the stream incomplete, and says so.
// Skipped while the daemons do not serve the Logs service (its wiring into shoald).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from '../../../deploy/labkit/lab.js';
import { cli, formCluster, killDaemon } from '../../../deploy/labkit/cluster.js';
import { testLabName } from '../labkit/helpers.js';
import { waitFor } from '../../support/wait.js';
import { labImage, perHost, running, shoal, tasks } from '../probes.js';

const LINE = /^talk\.([123])\.([a-z0-9]{12})@(h[123]) {4}\| (.*)$/;

function parse(stdout: string): Array<{ slot: string; task: string; host: string; text: string }> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = LINE.exec(l);
      assert.ok(m, `a line in Docker's format: ${JSON.stringify(l)}`);
      return { slot: m[1]!, task: m[2]!, host: m[3]!, text: m[4]! };
    });
}

test('service logs over real hosts: every host, through a follower, one task, a worker, a host gone', async (t) => {
  const lab = new Lab(testLabName('logs'));
  t.after(async () => {
    await lab.down();
  });
  await lab.up({ hosts: 3, registry: true });
  await formCluster(lab, 2, () => {});
  // An unknown service is an error naming it (and proves the Logs service is served).
  const probe = cli(lab, 'h1', ['service', 'logs', 'no-such-service']);
  assert.notEqual(probe.status, 0);
  assert.match(probe.stderr, /no-such-service/);

  shoal(lab, 'h1', ['service', 'create', '--detach', '--name', 'talk', '--replicas', '3', labImage(lab), 'sh', '-c', 'echo out; echo err >&2; trap "exit 0" TERM; sleep 1d & wait']);
  let spread = '';
  await waitFor(() => `talk to run on every host (last: ${spread})`, () => (spread = perHost(running(lab, 'talk'))) === 'h1:1 h2:1 h3:1', { timeoutMs: 60_000 });

  await t.test('on the leader: each task\'s stdout and stderr, named like Docker', async () => {
    const r = await waitFor('every task\'s lines', () => {
      const x = cli(lab, 'h1', ['service', 'logs', 'talk']);
      return x.status === 0 && parse(x.stdout).length === 3 && parse(x.stderr).length === 3 ? x : undefined;
    });
    const out = parse(r.stdout);
    assert.deepEqual(out.map((l) => l.text), ['out', 'out', 'out']);
    assert.deepEqual(out.map((l) => l.host).sort(), ['h1', 'h2', 'h3']);
    assert.deepEqual(out.map((l) => l.slot).sort(), ['1', '2', '3']);
    assert.deepEqual(parse(r.stderr).map((l) => l.text), ['err', 'err', 'err']);
  });

  await t.test('on a follower manager: the same, forwarded to the leader; -t and --tail', async () => {
    const r = cli(lab, 'h2', ['service', 'logs', '--tail', '1', '-t', '--raw', 'talk']);
    assert.equal(r.status, 0, r.stderr);
    // The last line of each task is its stderr line; stdout gets nothing.
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err$/);
  });

  await t.test('one task, by id; a worker cannot serve logs', async () => {
    const task = tasks(lab, 'talk').find((x) => x.node === 'h3')!;
    const r = cli(lab, 'h1', ['service', 'logs', '--no-trunc', task.id]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `talk.${task.name.split('.')[1]}.${task.id}@h3    | out\n`);
    const worker = cli(lab, 'h3', ['service', 'logs', 'talk']);
    assert.equal(worker.status, 1);
    assert.match(worker.stderr, /not a swarm manager/);
  });

  await t.test('a host gone: the others\' lines, then an incomplete-stream warning and exit 1', async () => {
    await killDaemon(lab, 'h3');
    const r = await waitFor('the leader to miss h3', () => {
      const x = cli(lab, 'h1', ['service', 'logs', 'talk']);
      return x.status === 1 ? x : undefined;
    });
    assert.deepEqual(parse(r.stdout).map((l) => l.host).sort(), ['h1', 'h2']);
    assert.match(r.stderr, /warning: incomplete log stream\. some logs could not be retrieved for the following reasons: node h3 \(\w+\) (is not available|disconnected|is down)/);
  });
});
