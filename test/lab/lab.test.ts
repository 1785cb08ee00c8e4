// The lab, for real: namespaces, veths on a bridge, pings between hosts, and `down` leaving the
// machine exactly as it found it, whatever state the lab was left in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Lab } from '../../deploy/labkit/lab.js';
import { namespaceId, processesIn } from '../../deploy/labkit/procs.js';
import { ipBatch, runQuiet } from '../../deploy/labkit/run.js';
import { exited, lab, labBin, labChild, ofLab, snapshot, testLabName, waitFor } from './labkit/helpers.js';

/** A lab for one test, taken down afterwards whether the test passed or not. */
function labFor(t: { after: (fn: () => Promise<void>) => void }, tag: string): string {
  const name = testLabName(tag);
  t.after(async () => {
    await new Lab(name).down();
  });
  return name;
}

test('up: hosts reach each other on the underlay, and nothing else', async (t) => {
  const name = labFor(t, 'up');
  const before = await snapshot();
  const up = await lab(['up', '--hosts', '3', '--name', name]);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(up.stdout, 'h1\t198.18.0.1\nh2\t198.18.0.2\nh3\t198.18.0.3\n');

  const l = new Lab(name);
  const ping = await l.exec('h1', ['busybox', 'ping', '-c1', '-W1', l.host('h3').address]);
  assert.equal(ping.code, 0, `h1 cannot ping h3: ${ping.stdout}${ping.stderr}`);

  const route = await l.exec('h1', ['ip', 'route', 'get', '192.0.2.1']);
  assert.notEqual(route.code, 0, `h1 has a route out of the lab: ${route.stdout}`);
  assert.match(route.stderr, /unreachable/i);

  const hostname = await lab(['exec', '--name', name, 'h2', '--', 'hostname']);
  assert.equal(hostname.stdout, 'h2\n');

  const code = await lab(['exec', '--name', name, 'h2', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  assert.deepEqual(code, { code: 7, stdout: 'out\n', stderr: 'err\n' });

  const after = await snapshot();
  assert.deepEqual(after.rootLinks, before.rootLinks, 'up changed the links of the root namespace');
  assert.deepEqual(ofLab(after, name).netns, [`${name}-h1`, `${name}-h2`, `${name}-h3`, `${name}-underlay`]);

  const status = await lab(['status', '--name', name]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`^h3 +198\\.18\\.0\\.3 +${name}-h3 +up$`, 'm'));
});

test('up: again with the same shape is fine, with another shape says so', async (t) => {
  const name = labFor(t, 'again');
  assert.equal((await lab(['up', '--hosts', '2', '--name', name])).code, 0);
  const same = await lab(['up', '--hosts', '2', '--name', name]);
  assert.equal(same.code, 0, same.stderr);
  const other = await lab(['up', '--hosts', '3', '--name', name]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /already up with 2 hosts on 198\.18\.0\.0\/24, not 3/);
  await assert.rejects(new Lab(`${name}x`).up({ hosts: 2, subnet: '10.1.2.3/24' }), /invalid subnet "10\.1\.2\.3\/24".*10\.1\.2\.0\/24/);
});

test('down: leaves namespaces, root links and mounts exactly as before up', async (t) => {
  const name = labFor(t, 'down');
  const before = ofLab(await snapshot(), name);
  await new Lab(name).up({ hosts: 3 });
  assert.notDeepEqual(ofLab(await snapshot(), name), before, 'up made nothing to compare');
  const down = await lab(['down', '--name', name]);
  assert.equal(down.code, 0, down.stderr);
  assert.deepEqual(ofLab(await snapshot(), name), before);
  assert.equal(existsSync(`/run/shoal-lab/${name}`), false);
  assert.equal(existsSync(`/var/lib/shoal-lab/${name}`), false);
});

test('down: twice is clean', async (t) => {
  const name = labFor(t, 'twice');
  const before = ofLab(await snapshot(), name);
  await new Lab(name).up({ hosts: 2 });
  assert.equal((await new Lab(name).down()).found, true);
  const second = await lab(['down', '--name', name]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /nothing to remove/);
  assert.deepEqual(ofLab(await snapshot(), name), before);
});

test('down: cleans a lab whose up was killed with SIGKILL half-way', async (t) => {
  const name = labFor(t, 'killed');
  const before = ofLab(await snapshot(), name);
  const up = labChild(t, ['up', '--hosts', '8', '--name', name]);
  await waitFor(`namespace ${name}-h2`, () => existsSync(`/run/netns/${name}-h2`));
  up.kill('SIGKILL');
  assert.equal((await exited(up)).signal, 'SIGKILL');
  assert.equal(new Lab(name).state()?.status, 'building', 'up finished before it was killed: nothing half-made to test');

  const down = await lab(['down', '--name', name]);
  assert.equal(down.code, 0, down.stderr);
  assert.deepEqual(ofLab(await snapshot(), name), before);
  assert.equal(existsSync(`/run/shoal-lab/${name}`), false);
});

test('up: after a killed up, cleans the leftovers and builds the lab', async (t) => {
  const name = labFor(t, 'rebuild');
  const up = labChild(t, ['up', '--hosts', '8', '--name', name]);
  await waitFor(`namespace ${name}-h1`, () => existsSync(`/run/netns/${name}-h1`));
  up.kill('SIGKILL');
  await exited(up);

  const l = new Lab(name);
  assert.equal((await l.up({ hosts: 2 })).created, true);
  assert.deepEqual(ofLab(await snapshot(), name).netns, [`${name}-h1`, `${name}-h2`, `${name}-underlay`]);
  const ping = await l.exec('h2', ['busybox', 'ping', '-c1', '-W1', '198.18.0.1']);
  assert.equal(ping.code, 0, ping.stdout + ping.stderr);
});

test('down: kills a process left running on a host', async (t) => {
  const name = labFor(t, 'stray');
  const l = new Lab(name);
  await l.up({ hosts: 2 });
  const h1 = l.host('h1');
  const exec = labChild(t, ['exec', '--name', name, 'h1', '--', 'sleep', '1000']);
  const inH1 = new Set([namespaceId(h1.netnsPath)!]);
  await waitFor('sleep running in h1', () => processesIn(inH1).length > 0);
  const [stray] = processesIn(inH1);

  const down = await lab(['down', '--name', name]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, new RegExp(`killed 1 process left in the lab: ${stray}`));
  assert.deepEqual(await exited(exec), { code: 128 + 9, signal: null }, 'lab exec reports the command killed by SIGKILL');
  assert.equal(existsSync(`/proc/${stray}/ns/net`), false, 'the stray process is still alive');
});

test('labs side by side: sealed from each other, down touches only its own', async (t) => {
  // The second name starts with the first lab's host namespace name: `a-h1` vs `a-h1-h1`.
  const a = labFor(t, 'side');
  const b = labFor(t, 'side-h1');
  const labA = new Lab(a);
  const labB = new Lab(b);
  await labA.up({ hosts: 2 });
  await labB.up({ hosts: 3 });

  // Same subnet in both; .3 exists only in b.
  const inB = await labB.exec('h1', ['busybox', 'ping', '-c1', '-W1', '198.18.0.3']);
  assert.equal(inB.code, 0, inB.stdout + inB.stderr);
  const fromA = await labA.exec('h1', ['busybox', 'ping', '-c1', '-W1', '198.18.0.3']);
  assert.notEqual(fromA.code, 0, 'lab a reaches a host of lab b');

  await labA.down();
  assert.deepEqual(ofLab(await snapshot(), b).netns, [`${b}-h1`, `${b}-h2`, `${b}-h3`, `${b}-underlay`]);
  const still = await labB.exec('h3', ['hostname']);
  assert.equal(still.stdout, 'h3\n');
});

test('SHOAL_LAB selects the lab; exec names a missing host', async (t) => {
  const name = labFor(t, 'env');
  await new Lab(name).up({ hosts: 1 });
  const viaEnv = await runQuiet(['env', `SHOAL_LAB=${name}`, labBin, 'exec', 'h1', 'hostname']);
  assert.equal(viaEnv.stdout, 'h1\n', viaEnv.stderr);
  const missing = await lab(['exec', '--name', name, 'h4', '--', 'true']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no host "h4" in lab "lt\d+-env" \(its hosts are h1\)/);
  const notUp = await lab(['exec', '--name', `${name}-none`, 'h1', '--', 'true']);
  assert.match(notUp.stderr, /is not up/);
});

test('down: while an up of the lab is still running, stops it and cleans', async (t) => {
  const name = labFor(t, 'race');
  const before = ofLab(await snapshot(), name);
  const up = labChild(t, ['up', '--hosts', '20', '--name', name]);
  await waitFor(`namespace ${name}-h1`, () => existsSync(`/run/netns/${name}-h1`));
  // In this process, at once: a CLI `down` would take as long to start as `up` takes to finish.
  const log: string[] = [];
  const l = new Lab(name, (line) => log.push(line));
  assert.equal(l.state()?.status, 'building');
  await l.down();
  assert.match(log.join('\n'), /stopping the unfinished up/);
  assert.equal((await exited(up)).signal, 'SIGKILL');
  assert.deepEqual(ofLab(await snapshot(), name), before);
});

test('an ip failure names the command line and its stderr', async (t) => {
  const name = labFor(t, 'iperr');
  const l = new Lab(name);
  const { layout } = await l.up({ hosts: 1 });
  const ns = layout.underlay.netns;
  await assert.rejects(ipBatch(ns, ['link set lo up', 'link add x0 type nosuchkind']), (e: Error) => {
    assert.equal(e.message, `\`ip -n ${ns} link add x0 type nosuchkind\` exited 1: Error: Unknown device type. | Command failed -:2`);
    return true;
  });
});

test('up: a step failing part-way removes everything up made', async (t) => {
  const name = labFor(t, 'fail');
  const before = ofLab(await snapshot(), name);
  // The progress callback runs between steps: throwing from it is a step failing after h2 is built.
  let failed = false;
  const l = new Lab(name, (line) => {
    if (!failed && line.startsWith('h2:')) {
      failed = true;
      throw new Error('injected failure');
    }
  });
  await assert.rejects(l.up({ hosts: 4 }), /injected failure/);
  assert.deepEqual(ofLab(await snapshot(), name), before);
  assert.equal(l.state(), undefined);
});
