// The stack commands end to end against a stand-in Control service: what they ask for and print.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeControl } from '../cli/fakecontrol.js';

const NS = 'com.docker.stack.namespace';
const svc = (id: string, name: string, stack?: string) => ({
  id,
  spec: { annotations: { name, labels: stack ? { [NS]: stack } : {} }, replicated: { replicas: 2 }, task: { container: { image: 'busybox:latest' } } },
});

test('stack ls counts services per namespace label; stack services lists only the stack’s', async (t) => {
  const fake = new FakeControl();
  await fake.start();
  t.after(() => fake.stop());
  const services = [svc('aaaaaaaaaaaaaaaa', 'web_api', 'web'), svc('bbbbbbbbbbbbbbbb', 'web_db', 'web'), svc('cccccccccccccccc', 'other_x', 'other'), svc('dddddddddddddddd', 'loose')];
  fake.answers.listServices = (req: { filters: Record<string, string> }) => ({
    services: services.filter((s) => {
      const [k, v] = (req.filters.label ?? '').split('=');
      return !k || (k in s.spec.annotations.labels && (v === undefined || (s.spec.annotations.labels as Record<string, string>)[k] === v));
    }),
    statuses: [{ serviceId: 'aaaaaaaaaaaaaaaa', runningTasks: 2, desiredTasks: 2, completedTasks: 0 }],
  });
  const ls = await fake.run('stack', 'ls');
  assert.equal(ls.code, 0, ls.err);
  assert.match(ls.out, /^NAME\s+SERVICES\nother\s+1\nweb\s+2\n$/);

  const services2 = await fake.run('stack', 'services', 'web');
  assert.equal(services2.code, 0, services2.err);
  assert.match(services2.out, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\naaaaaaaaaaaa\s+web_api\s+replicated\s+2\/2\s+busybox:latest\s*\nbbbbbbbbbbbb\s+web_db\s+replicated\s+0\/2/);
  assert.deepEqual(fake.calls.at(-1)!.request, { filters: { label: `${NS}=web` } });

  const none = await fake.run('stack', 'services', 'nothing');
  assert.equal(none.err, 'Nothing found in stack: nothing\n');
});

test('stack deploy refuses a bad file before calling the daemon, naming the problem', async (t) => {
  const fake = new FakeControl();
  await fake.start();
  const dir = mkdtempSync(join(tmpdir(), 'stack-cmd-'));
  t.after(async () => {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'c.yml');
  writeFileSync(file, 'services:\n  a:\n    image: x\n    deploy: {replicas: two}\n');
  const r = await fake.run('stack', 'deploy', '-c', file, 'app');
  assert.equal(r.code, 1);
  assert.match(r.err, /services.a.deploy.replicas: expected a non-negative integer, got "two"/);
  assert.deepEqual(fake.calls, []);
  const missing = await fake.run('stack', 'deploy', 'app');
  assert.match(missing.err, /please specify a Compose file/);
  const nofile = await fake.run('stack', 'deploy', '-c', join(dir, 'gone.yml'), 'app');
  assert.match(nofile.err, /open .*gone.yml: no such file or directory/);
});
