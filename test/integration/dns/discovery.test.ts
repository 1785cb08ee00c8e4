// Service discovery for real, in namespaces this test makes:
//
//   HOST    bridge gwbr 172.31.0.1/24 (the gwbridge; the DNS server listens here, port 53)
//           bridge ovbr (the overlay segment 10.77.0.0/24)
//   CLIENT  eth0 10.77.0.10 on ovbr, eth1 172.31.0.10 on gwbr (its DNS queries come from here)
//   B1, B2  eth0 10.77.0.11 / .12 on ovbr, each a `busybox nc` server answering its own name
//
// ServiceDiscovery runs in a child process inside HOST (fixture.ts); busybox nslookup in CLIENT
// asks it, and connections from CLIENT to the service VIP 10.77.0.2 must reach both backends
// through the nftables DNAT it programs in CLIENT's namespace.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test, type TestContext } from 'node:test';
import { tempNetns } from '../netlink/netns.js';
import { waitFor } from '../../support/wait.js';
import { peerValue, type PeerRow } from '../../unit/dns/peers.js';
import type { FixtureReply, FixtureRequest } from './fixture.js';

const execFileP = promisify(execFile);
const VIP = '10.77.0.2';
const GATEWAY = '172.31.0.1';

async function ip(...args: string[]): Promise<void> {
  await execFileP('ip', args);
}

/** Runs a command in a namespace with stdin closed; resolves with its exit code and output. */
function runIn(netns: string, cmd: string[], timeoutMs = 10_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=/run/netns/${netns}`, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output });
    });
  });
}

/** A long-running process in a namespace, SIGKILLed when the test ends. */
function startIn(t: TestContext, netns: string, cmd: string[], stdio: ('ignore' | 'inherit' | 'ipc')[] = ['ignore', 'ignore', 'inherit']): ChildProcess {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, ...cmd], { stdio });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

class Fixture {
  private next = 1;
  private readonly waiting = new Map<number, (reply: FixtureReply) => void>();

  constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: FixtureReply) => this.waiting.get(reply.id)?.(reply));
  }

  async call<T = unknown>(req: FixtureRequest): Promise<T> {
    const id = this.next++;
    const reply = await new Promise<FixtureReply>((resolve, reject) => {
      this.waiting.set(id, resolve);
      this.child.once('exit', (code, signal) => reject(new Error(`dns fixture exited (${signal ?? code})`)));
      this.child.send({ id, ...req });
    });
    this.waiting.delete(id);
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply.result as T;
  }

  put(networkId: string, endpointId: string, row: PeerRow): Promise<unknown> {
    return this.call({ op: 'put', key: `endpoints/${networkId}/${endpointId}`, value: new TextDecoder().decode(peerValue(row)) });
  }
}

/** Plugs a new veth from `netns` into bridge `bridge` of the host namespace. */
async function plug(host: string, bridge: string, hostEnd: string, netns: string, ifname: string, cidr: string): Promise<void> {
  await ip('-n', host, 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', ifname, 'netns', netns);
  await ip('-n', host, 'link', 'set', hostEnd, 'master', bridge, 'up');
  await ip('-n', netns, 'addr', 'add', cidr, 'dev', ifname);
  await ip('-n', netns, 'link', 'set', ifname, 'up');
}

test('tasks resolve service names through the embedded DNS server and reach both backends through the VIP', { timeout: 120_000 }, async (t) => {
  const host = await tempNetns(t);
  const client = await tempNetns(t);
  const b1 = await tempNetns(t);
  const b2 = await tempNetns(t);
  for (const ns of [host, client, b1, b2]) await ip('-n', ns, 'link', 'set', 'lo', 'up');
  for (const br of ['gwbr', 'ovbr']) await ip('-n', host, 'link', 'add', br, 'type', 'bridge');
  await ip('-n', host, 'addr', 'add', `${GATEWAY}/24`, 'dev', 'gwbr');
  for (const br of ['gwbr', 'ovbr']) await ip('-n', host, 'link', 'set', br, 'up');
  await plug(host, 'ovbr', 'vc0', client, 'eth0', '10.77.0.10/24');
  await plug(host, 'gwbr', 'vc1', client, 'eth1', '172.31.0.10/24');
  await ip('-n', client, 'route', 'add', 'default', 'via', GATEWAY);
  await plug(host, 'ovbr', 'vb1', b1, 'eth0', '10.77.0.11/24');
  await plug(host, 'ovbr', 'vb2', b2, 'eth0', '10.77.0.12/24');

  for (const [ns, name] of [[b1, 'b1'], [b2, 'b2']] as const) startIn(t, ns, ['busybox', 'nc', '-ll', '-p', '8080', '-e', 'echo', name]);
  const connect = async (address: string) => (await runIn(client, ['busybox', 'nc', '-w', '3', address, '8080'])).output.trim();
  await waitFor('backend b1 listening', async () => (await connect('10.77.0.11')) === 'b1');
  await waitFor('backend b2 listening', async () => (await connect('10.77.0.12')) === 'b2');

  const fixturePath = fileURLToPath(new URL('./fixture.js', import.meta.url));
  const fixture = new Fixture(startIn(t, host, [process.execPath, fixturePath], ['ignore', 'inherit', 'inherit', 'ipc']));
  assert.equal(await fixture.call({ op: 'serve', ip: GATEWAY }), 53);
  await fixture.put('ov', 'e1', { ip: '10.77.0.11', serviceName: 'web', slot: 1, task: 'tb1', vip: VIP, endpointMode: 'vip' });
  await fixture.put('ov', 'e2', { ip: '10.77.0.12', serviceName: 'web', slot: 2, task: 'tb2', vip: VIP, endpointMode: 'vip' });
  await fixture.put('other', 'e9', { ip: '10.88.0.9', serviceName: 'hidden', endpointMode: 'dnsrr' });

  const attached = await fixture.call({ op: 'attach', containerId: 'client-task', netnsPath: `/run/netns/${client}`, clientIp: '172.31.0.10', attachments: [{ networkId: 'ov', ip: '10.77.0.10' }] });
  assert.deepEqual(attached, { nameserver: GATEWAY });

  const nslookup = (name: string) => runIn(client, ['busybox', 'nslookup', name, GATEWAY]);
  const web = await nslookup('web');
  assert.equal(web.code, 0, web.output);
  assert.match(web.output, new RegExp(`Address: ${VIP.replace(/\./g, '\\.')}\\s*$`, 'm'));
  const tasks = await nslookup('tasks.web');
  assert.equal(tasks.code, 0, tasks.output);
  assert.match(tasks.output, /Address: 10\.77\.0\.11/);
  assert.match(tasks.output, /Address: 10\.77\.0\.12/);
  assert.match((await nslookup('web.2.tb2')).output, /Address: 10\.77\.0\.12/);
  assert.match((await nslookup('10.77.0.11')).output, /name = web\.1\.tb1/);
  const hidden = await nslookup('hidden');
  assert.notEqual(hidden.code, 0, 'a service of a network the task is not on stays hidden');
  assert.match(hidden.output, /NXDOMAIN/);

  const table = await runIn(client, ['nft', 'list', 'table', 'ip', 'shoal-lb']);
  assert.match(table.output, new RegExp(`ip daddr ${VIP.replace(/\./g, '\\.')} dnat to numgen random mod 2 map \\{ 0 : 10\\.77\\.0\\.11, 1 : 10\\.77\\.0\\.12 \\}`), table.output);
  // Random per connection (the kernel's numgen): both backends show up well within 64 tries
  // (the chance of not seeing one is 2^-63).
  const seen = new Set<string>();
  for (let i = 0; i < 64 && seen.size < 2; i++) seen.add(await connect(VIP));
  assert.deepEqual([...seen].sort(), ['b1', 'b2']);

  // b2 leaves the peer table: the VIP table and the names follow.
  await fixture.call({ op: 'delete', key: 'endpoints/ov/e2' });
  await waitFor('the VIP table down to b1', async () => {
    const out = (await runIn(client, ['nft', 'list', 'table', 'ip', 'shoal-lb'])).output;
    return out.includes(`ip daddr ${VIP} dnat to 10.77.0.11`) && !out.includes('10.77.0.12');
  });
  for (let i = 0; i < 8; i++) assert.equal(await connect(VIP), 'b1');
  const after = await nslookup('tasks.web');
  assert.doesNotMatch(after.output, /10\.77\.0\.12/);

  await fixture.call({ op: 'detach', containerId: 'client-task' });
  const tables = await runIn(client, ['nft', 'list', 'tables']);
  assert.equal(tables.code, 0, tables.output);
  assert.doesNotMatch(tables.output, /shoal-lb/);
  const refused = await nslookup('web');
  assert.notEqual(refused.code, 0, 'a detached task is no longer answered');
  await fixture.call({ op: 'close' });
});
