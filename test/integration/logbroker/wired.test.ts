// The log broker as the managers serve it (manager.ts wires it in): two real managers, the leader
// and a follower, each with its cluster port behind the authz interceptor; a worker that joined
// with a token publishes its task's log through the follower it was told of (redirected to the
// leader), and the CLI on the follower's local socket reads it (forwarded to the leader). Skipped
// while manager.ts does not expose `logs` (the wiring of manager/logbroker).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { Manager } from '../../../manager/manager.js';
import { newId } from '../../../manager/ca/ca.js';
import { formatJoinToken } from '../../../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { blank } from '../../../manager/store/blank.js';
import { registerLocalLogs } from '../../../manager/logbroker/frontend.js';
import { MembershipClient, type JoinRaftResponse } from '../../../proto/gen/membership.js';
import { Annotations, ReplicatedService, Service, ServiceSpec, Task, TaskStatus } from '../../../proto/gen/objects.js';
import { requestNodeCertificate } from '../../../daemon/join.js';
import { LogPublisher } from '../../../agent/logs/publisher.js';
import { runcTaskLogs } from '../../../agent/logs/source.js';
import { Layout } from '../../../agent/runtime/runc/layout.js';
import { runServiceLogs, serviceLogsFlags } from '../../../cli/commands/servicelogs.js';
import { parseFlags } from '../../../util/flags.js';
import { waitFor } from '../../support/wait.js';
import { fakeContainer, foundCluster, freePort, k8s, scratch } from './fixtures.js';

test('a worker publishes through a follower and a CLI on the follower reads through the leader', async (t) => {
  const { dir, cleanup } = await scratch(t, 'logs-wired');
  const { ca, manager: m1 } = await foundCluster(dir, cleanup, 'leader-host');
  const cluster = await waitFor('the cluster object', () => m1.store.all('clusters')[0]);
  const token = (role: 'worker' | 'manager') => formatJoinToken(ca.digest(), cluster.joinTokens![role]);

  // A second manager joins: a follower.
  const p2 = await freePort();
  const j = await requestNodeCertificate(m1.addrForTests(), token('manager'), { hostname: 'follower-host', advertiseAddr: `127.0.0.1:${p2}` });
  const followerCreds = () => clusterChannelCredentials(j.caCertPem, j.certificatePem, j.keyPem);
  const membership = new MembershipClient(m1.addrForTests(), followerCreds(), MANAGER_CHANNEL_OPTIONS);
  const joined = await new Promise<JoinRaftResponse>((resolve, reject) => membership.joinRaft({ addr: `127.0.0.1:${p2}` }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))));
  membership.close();
  const m2 = await Manager.start({
    nodeId: j.nodeId,
    raftId: joined.raftId,
    dataDir: join(dir, 'm2'),
    listenAddr: `127.0.0.1:${p2}`,
    advertiseAddr: `127.0.0.1:${p2}`,
    hostname: 'follower-host',
    certs: { ca: j.caCertPem, cert: j.certificatePem, key: j.keyPem },
    join: joined.members.map((m) => ({ id: m.raftId, addr: m.addr })),
    tickMs: 20,
  });
  cleanup.push(() => m2.stop().catch(() => undefined));

  // A worker joins with its token (the CA records its node and certificate) and runs one task.
  const w = await requestNodeCertificate(m1.addrForTests(), token('worker'), { hostname: 'worker-host', advertiseAddr: '' });
  const serviceId = newId();
  const taskId = newId();
  await m1.store.update((tx) => {
    tx.create('services', blank(Service, { id: serviceId, spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'api' }), replicated: blank(ReplicatedService, { replicas: 1 }) }) }));
    tx.create('tasks', blank(Task, { id: taskId, serviceId, slot: 1, nodeId: w.nodeId, desiredState: 'RUNNING', status: blank(TaskStatus, { state: 'RUNNING' }) }));
  });
  await waitFor('the task on the follower', () => m2.store.get('tasks', taskId) && !m2.isLeader);
  const layout = new Layout(join(dir, 'worker'));
  await fakeContainer(layout, taskId, k8s(0, 'stdout', 'hello from the worker'));
  const publisher = new LogPublisher({
    managers: [`127.0.0.1:${p2}`],
    credentials: clusterChannelCredentials(w.caCertPem, w.certificatePem, w.keyPem),
    channelOptions: MANAGER_CHANNEL_OPTIONS,
    source: runcTaskLogs({ list: () => [{ task: m1.store.get('tasks', taskId)! }] }, { layout }),
    pollMs: 20,
  });
  publisher.start();
  cleanup.push(() => publisher.stop());

  // The follower's daemon socket.
  const local = new grpc.Server();
  cleanup.push(() => local.forceShutdown());
  registerLocalLogs(local, () => m2.logs, { credentials: followerCreds });
  const socket = join(dir, 'follower.sock');
  await new Promise<void>((resolve, reject) => local.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));

  const lines = await waitFor('the worker\'s line through both managers', async () => {
    let text = '';
    const out = { write: (s: string) => ((text += s), true), once: () => out } as unknown as NodeJS.WritableStream;
    const parsed = parseFlags(['api'], serviceLogsFlags);
    const code = await runServiceLogs({ args: parsed.args, flags: parsed.flags, global: { host: `unix://${socket}` }, out, err: out }).catch(() => 1);
    return code === 0 && text !== '' ? text : undefined;
  });
  assert.equal(lines, `api.1.${taskId.slice(0, 12)}@worker-host    | hello from the worker\n`);
});
