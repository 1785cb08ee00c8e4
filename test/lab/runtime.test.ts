// The runtime's acceptance in the lab, with real containers on two hosts, driven through the CLI
// as a user would:
//   - images: a pull from the lab registry, `image load` of a docker save tarball; a bad
//     reference, an unreachable registry and a corrupt layer (its bytes flipped in the
//     registry's storage, so the digest does not match) each fail with one clear line and
//     leave no image and no half-written file behind;
//   - a task's container: its own pid/net/mount/uts/ipc namespaces, its memory limit in its
//     cgroup, the image's user, its env and mounts, and ping to a task on the other host;
//   - a failing health check: the task is unhealthy, FAILED, and restarted per its policy;
//   - shoald killed with SIGKILL while 10 containers run: they keep running, and after the
//     restart all 10 are RUNNING again without being restarted, but one killed meanwhile,
//     which shows its exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../../deploy/labkit/lab.js';
import { daemonPid, formCluster, killDaemon, startDaemon } from '../../deploy/labkit/cluster.js';
import { registryHost, REGISTRY_PORT, testImageLayout, testImageReference } from '../../deploy/labkit/registry.js';
import { sha256 } from '../../agent/runtime/image/oci.js';
import { containerIdFor } from '../../agent/worker/naming.js';
import { writeLayout } from '../integration/image/helpers.js';
import { runShoal, type CliResult } from '../integration/engine/daemon.js';
import { waitFor } from '../support/wait.js';
import { repo, testLabName } from './labkit/helpers.js';

const MiB = 1024 * 1024;

/** Writes `dest` as a copy of the OCI layout `src` whose image config `edit` changed (same layers). */
function variantLayout(src: string, dest: string, edit: (config: { config: Record<string, unknown> }) => void): void {
  const blob = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7));
  const index = JSON.parse(readFileSync(join(src, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string }> };
  const top = index.manifests[0]!;
  const manifest = JSON.parse(readFileSync(blob(src, top.digest), 'utf8')) as { config: { digest: string; size: number }; layers: Array<{ digest: string }> };
  const config = JSON.parse(readFileSync(blob(src, manifest.config.digest), 'utf8')) as { config: Record<string, unknown> };
  edit(config);
  mkdirSync(join(dest, 'blobs', 'sha256'), { recursive: true });
  const put = (data: Buffer) => {
    const digest = sha256(data);
    writeFileSync(blob(dest, digest), data);
    return { digest, size: data.length };
  };
  for (const l of manifest.layers) copyFileSync(blob(src, l.digest), blob(dest, l.digest));
  manifest.config = { ...manifest.config, ...put(Buffer.from(JSON.stringify(config))) };
  const m = put(Buffer.from(JSON.stringify(manifest)));
  writeFileSync(join(dest, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: top.mediaType, ...m, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  writeFileSync(join(dest, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

function ok(r: CliResult, what: string): string {
  assert.equal(r.status, 0, `${what}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

test('the runtime in the lab: images, a task container seen from the host, health, and a shoald killed under 10 containers', async (t) => {
  const lab = new Lab(testLabName('rt'));
  t.after(async () => {
    // The daemons first: one still creating task namespaces while `down` sweeps could leave one.
    for (const h of ['h1', 'h2']) if (lab.state() && daemonPid(lab, h)) await killDaemon(lab, h);
    await lab.down();
  });
  const { layout } = await lab.up({ hosts: 2, registry: true });
  await formCluster(lab, 1, () => {});
  const shoal = (host: string, args: string[]) => runShoal(lab.host(host).socket, args);
  const reg = registryHost(layout);
  const image = testImageReference(layout);
  const dataRoot = (host: string) => join(lab.host(host).dataDir, 'data');
  const runcRoot = (host: string) => join(dataRoot(host), 'agent', 'runtime', 'runc');
  const push = async (layoutDir: string, dest: string) => {
    const r = await lab.exec('h1', ['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:latest`, `docker://${dest}`]);
    assert.equal(r.code, 0, r.stderr);
  };
  /** The running containers a host's runc knows: id → pid. */
  const runcPids = (host: string): Map<string, number> => {
    const list = JSON.parse(execFileSync('runc', ['--root', runcRoot(host), 'list', '--format', 'json'], { encoding: 'utf8' }) || '[]') as Array<{ id: string; pid: number; status: string }> | null;
    return new Map((list ?? []).filter((c) => c.status === 'running').map((c) => [c.id, c.pid]));
  };
  /** `service ps` rows of the tasks meant to run: name, node, state, id. */
  const running = async (service: string) =>
    ok(await shoal('h1', ['service', 'ps', service, '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.Name}}|{{.Node}}|{{.CurrentState}}|{{.ID}}']), 'service ps')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [name, node, state, id] = l.split('|') as [string, string, string, string];
        return { name, node, state: state.split(' ')[0]!, id };
      });

  // The images the services use, pushed first: the test image with the image's user set to
  // nobody, and, for the corrupt-layer case, a small image of its own.
  const work = join(lab.dataDir, 'runtime-test');
  variantLayout(testImageLayout(), join(work, 'nobody'), (c) => (c.config.User = 'nobody'));
  const nobodyImage = `${reg}/shoal/busybox-nobody:latest`;
  writeLayout(join(work, 'corrupt'), [{ layers: [[{ name: 'data.txt', type: 'file', data: Buffer.from('flip me\n'.repeat(512)) }]] }]);
  await Promise.all([push(join(work, 'nobody'), nobodyImage), push(join(work, 'corrupt'), `${reg}/shoal/corrupt:latest`)]);
  const shared = join(work, 'shared');
  mkdirSync(shared, { recursive: true, mode: 0o755 });
  writeFileSync(join(shared, 'hello.txt'), 'from the host\n', { mode: 0o644 });

  // Services converge while the image commands run on h2.
  ok(await shoal('h1', ['network', 'create', '--driver', 'overlay', 'rtnet']), 'network create');
  const created = await Promise.all([
    shoal('h1', [
      'service', 'create', '-d', '--name', 'app', '--replicas', '2', '--replicas-max-per-node', '1', '--network', 'rtnet',
      '--env', 'GREETING=hello', '--limit-memory', '64M', '--mount', 'type=tmpfs,target=/scratch', '--mount', `type=bind,source=${shared},target=/data,readonly`,
      nobodyImage, 'sleep', '100000',
    ]),
    shoal('h1', [
      'service', 'create', '-d', '--name', 'sick', '--constraint', 'node.hostname==h1', '--health-cmd', 'false', '--health-interval', '1s', '--health-retries', '2',
      '--restart-condition', 'on-failure', '--restart-delay', '100ms', image, 'sleep', '100000',
    ]),
    shoal('h1', ['service', 'create', '-d', '--name', 'ten', '--replicas', '10', '--constraint', 'node.hostname==h1', image, 'sleep', '100000']),
  ]);
  created.forEach((r, i) => ok(r, `service create #${i + 1}`));

  await t.test('images: pull and load, and three failed imports that leave nothing behind', async () => {
    // The corrupt layer: flipped in the registry's own storage after the push, size unchanged.
    const index = JSON.parse(readFileSync(join(work, 'corrupt', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const manifest = JSON.parse(readFileSync(join(work, 'corrupt', 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> };
    const layer = manifest.layers[0]!.digest;
    const stored = join(layout.registry!.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', layer.slice(7, 9), layer.slice(7), 'data');
    writeFileSync(stored, Buffer.from(readFileSync(stored).map((b) => b ^ 0xff)));
    const nowhere = `${layout.registry!.address}:${REGISTRY_PORT + 1}`;

    const [pulled, loaded, bad, unreachable, corrupt] = await Promise.all([
      shoal('h2', ['image', 'pull', image]),
      shoal('h2', ['image', 'load', '-i', join(repo, 'dist', 'images', 'busybox.tar')]),
      shoal('h2', ['image', 'pull', `${reg}/Shoal/busybox`]),
      shoal('h2', ['image', 'pull', `${nowhere}/shoal/busybox:latest`]),
      shoal('h2', ['image', 'pull', `${reg}/shoal/corrupt:latest`]),
    ]);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.match(pulled.stdout, new RegExp(`Status: (Downloaded newer image|Image is up to date) for ${image}\\n${image}\\n$`));
    assert.equal(loaded.stdout, 'Loaded image: busybox:latest\n', loaded.stderr);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, new RegExp(`^Error: invalid image reference "${reg}/Shoal/busybox": name component "Shoal" must be lowercase`));
    assert.equal(unreachable.status, 1);
    assert.match(unreachable.stderr, new RegExp(`^Error: cannot pull ${nowhere}/shoal/busybox:latest: registry ${nowhere} is unreachable \\(connect ECONNREFUSED`));
    assert.equal(corrupt.status, 1);
    assert.match(corrupt.stderr, new RegExp(`^Error: cannot pull ${reg}/shoal/corrupt:latest: blob ${layer} of ${reg}/shoal/corrupt: downloaded content hashes to sha256:[0-9a-f]{64}\\n$`));

    const names = ok(await shoal('h2', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']), 'image ls').trim().split('\n');
    assert.ok(names.includes(image) && names.includes('busybox:latest'), names.join(', '));
    assert.ok(!names.some((n) => n.includes('corrupt') || n.includes('Shoal')), `no image of a failed pull: ${names.join(', ')}`);
    const images = join(dataRoot('h2'), 'agent', 'images');
    assert.deepEqual(readdirSync(join(images, 'blobs', 'sha256')).filter((b) => b === layer.slice(7)), [], 'the corrupt blob is not kept');
    await waitFor('no download in progress on h2', () => readdirSync(join(images, 'tmp')).length === 0);
  });

  await t.test("a task's container: namespaces, memory limit, the image's user, env, mounts, ping across hosts", async () => {
    const tasks = await waitFor('both app tasks running', async () => {
      const r = await running('app');
      return r.length === 2 && r.every((x) => x.state === 'Running') && new Set(r.map((x) => x.node)).size === 2 ? r : undefined;
    }, { timeoutMs: 60_000 });
    const here = tasks.find((x) => x.node === 'h1')!;
    const there = tasks.find((x) => x.node === 'h2')!;

    const [id, seen, address, inUse, elsewhere] = await Promise.all([
      shoal('h1', ['exec', here.name, 'id']),
      shoal('h1', ['exec', here.name, 'sh', '-c', 'echo $GREETING; cat /data/hello.txt; grep -E " /(scratch|data) " /proc/mounts | cut -d" " -f2,3']),
      shoal('h2', ['exec', there.name, 'hostname', '-i']),
      shoal('h1', ['image', 'rm', nobodyImage]),
      shoal('h1', ['exec', there.name, 'true']),
    ]);
    assert.equal(ok(id, 'exec id'), 'uid=65534(nobody) gid=65534(nobody)\n');
    assert.match(ok(seen, 'exec env and mounts'), /^hello\nfrom the host\n/);
    assert.match(seen.stdout, /^\/scratch tmpfs$/m);
    assert.match(seen.stdout, /^\/data \w+$/m);
    // An image a task runs from is not removed unless forced; the error names the task.
    assert.equal(inUse.status, 1);
    assert.equal(inUse.stderr, `Error: unable to remove image ${nobodyImage}: it is in use by task ${here.name} (${here.id.slice(0, 12)}) (use -f to remove it anyway)\n`);
    // A task of another node: the error names the node.
    assert.equal(elsewhere.status, 1);
    assert.match(elsewhere.stderr, new RegExp(`^Error: task ${there.name.replace('.', '\\.')} \\(${there.id.slice(0, 12)}\\) runs on node h2, not on this node`));

    const pid = runcPids('h1').get(containerIdFor(here.id));
    assert.ok(pid, `runc on h1 runs the container of ${here.name}`);
    const host = daemonPid(lab, 'h1')!;
    for (const ns of ['pid', 'net', 'mnt', 'uts', 'ipc']) {
      assert.notEqual(readlinkSync(`/proc/${pid}/ns/${ns}`), readlinkSync(`/proc/${host}/ns/${ns}`), `the container has its own ${ns} namespace`);
    }
    const memoryCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l))!;
    const limit = readFileSync(join('/sys/fs/cgroup/memory', memoryCgroup.split(':')[2]!, 'memory.limit_in_bytes'), 'utf8');
    assert.equal(Number(limit), 64 * MiB);

    const ip = ok(address, 'exec hostname -i').trim();
    assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
    // Raw sockets are root's (the image's user is nobody).
    const ping = await shoal('h1', ['exec', '-u', 'root', here.name, 'ping', '-c', '1', '-W', '5', ip]);
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /1 packets received/);
  });

  await t.test('a failing health check: the task is unhealthy, FAILED, then replaced per its restart policy', async () => {
    const rows = await waitFor('the sick task to fail and be replaced', async () => {
      const out = ok(await shoal('h1', ['service', 'ps', 'sick', '--no-trunc', '--format', '{{.ID}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}']), 'service ps sick');
      const r = out.trim().split('\n').map((l) => l.split('|'));
      const failed = r.find((x) => x[2]!.startsWith('Failed') && x[3] === '"task: unhealthy container"');
      // The replacement: another task of the slot, meant to run.
      const replacement = failed && r.find((x) => x[0] !== failed[0] && x[1] === 'Running');
      return replacement ? { failed, replacement } : undefined;
    }, { timeoutMs: 60_000 });
    assert.notEqual(rows.replacement[0], rows.failed[0]);
  });

  await t.test('shoald killed with SIGKILL under 10 containers: they keep running; after the restart all are RUNNING again, one killed meanwhile shows its exit code', async () => {
    const tasks = await waitFor('10 tasks running', async () => {
      const r = await running('ten');
      return r.length === 10 && r.every((x) => x.state === 'Running') ? r : undefined;
    }, { timeoutMs: 60_000 });
    const before = runcPids('h1');
    const pids = new Map(tasks.map((x) => [x.id, before.get(containerIdFor(x.id))!]));
    assert.ok([...pids.values()].every((p) => p > 0));

    await killDaemon(lab, 'h1');
    const victim = tasks[3]!;
    process.kill(pids.get(victim.id)!, 'SIGKILL');
    await waitFor('the victim container to be gone', () => !runcPids('h1').has(containerIdFor(victim.id)));
    const during = runcPids('h1');
    for (const x of tasks) if (x !== victim) assert.equal(during.get(containerIdFor(x.id)), pids.get(x.id), `${x.name} runs on without its shoald`);
    await startDaemon(lab, 'h1');

    const after = await waitFor('the 9 tasks RUNNING again and the victim FAILED', async () => {
      const out = ok(await shoal('h1', ['service', 'ps', 'ten', '--no-trunc', '--format', '{{.ID}}|{{.CurrentState}}|{{.Error}}']), 'service ps ten');
      const r = new Map(out.trim().split('\n').map((l) => l.split('|')).map((x) => [x[0]!, x] as const));
      const victimRow = r.get(victim.id);
      const others = tasks.filter((x) => x !== victim).map((x) => r.get(x.id));
      return victimRow?.[1]!.startsWith('Failed') && others.every((x) => x?.[1]!.startsWith('Running')) ? victimRow : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(after[2], '"task: non-zero exit (137)"');
    // Not restarted: the very same processes.
    const now = runcPids('h1');
    for (const x of tasks) if (x !== victim) assert.equal(now.get(containerIdFor(x.id)), pids.get(x.id), `${x.name} was not restarted`);
  });
});
