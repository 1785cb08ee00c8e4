// ServiceDiscovery end to end on loopback: the real DNS server on an ephemeral port, the real
// embedded KV as the peer table, a recording load balancer instead of nftables (the nft side runs
// for real in test/integration/dns). Clients are told apart by their source address (127.0.0.x).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import { ServiceDiscovery, type ServiceDiscoveryOptions } from '../../../agent/network/dns/servicediscovery.js';
import type { LoadBalancer } from '../../../agent/network/dns/loadbalancer.js';
import type { VipBackends } from '../../../agent/network/dns/records.js';
import { TYPE_A, decodeResponse, encodeQuery, type DecodedResponse } from '../../../agent/network/dns/packet.js';
import { EmbeddedKv, LocalProposer } from '../../../manager/kv/embedded.js';
import { KvStateMachine } from '../../../manager/kv/statemachine.js';
import type { Kv, WatchOptions, WatchResult } from '../../../kv/kv.js';
import { mulberry32 } from '../../support/prng.js';
import { waitFor } from '../../support/wait.js';
import { peerEntry, type PeerRow } from './peers.js';

type LbCall = { op: 'apply'; netns: string; vips: VipBackends[] } | { op: 'remove'; netns: string };

class RecordingLoadBalancer implements LoadBalancer {
  readonly calls: LbCall[] = [];
  failWith: Error | undefined;

  apply(netns: string, vips: readonly VipBackends[]): Promise<void> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.calls.push({ op: 'apply', netns, vips: structuredClone([...vips]) });
    return Promise.resolve();
  }

  remove(netns: string): Promise<void> {
    this.calls.push({ op: 'remove', netns });
    return Promise.resolve();
  }

  lastApplied(netns: string): VipBackends[] | undefined {
    const call = this.calls.filter((c) => c.netns === netns && c.op === 'apply').at(-1);
    return call?.op === 'apply' ? call.vips : undefined;
  }
}

/** The embedded KV, counting the watches now waiting per key (to see watches dropped). */
class CountingKv extends EmbeddedKv {
  readonly waiting = new Map<string, number>();

  constructor() {
    const sm = new KvStateMachine();
    super(sm, new LocalProposer(sm), { expiryIntervalMs: 0 });
  }

  override async watch(keyOrPrefix: string, opts: WatchOptions): Promise<WatchResult> {
    this.waiting.set(keyOrPrefix, (this.waiting.get(keyOrPrefix) ?? 0) + 1);
    try {
      return await super.watch(keyOrPrefix, opts);
    } finally {
      this.waiting.set(keyOrPrefix, this.waiting.get(keyOrPrefix)! - 1);
    }
  }
}

interface Setup {
  kv: CountingKv;
  sd: ServiceDiscovery;
  lb: RecordingLoadBalancer;
  port: number;
}

async function setup(t: TestContext, opts: Partial<ServiceDiscoveryOptions> = {}): Promise<Setup> {
  const kv = new CountingKv();
  const lb = new RecordingLoadBalancer();
  const sd = new ServiceDiscovery({ kv, port: 0, loadBalancer: lb, random: mulberry32(7), resolvConfPath: '/nonexistent', ...opts });
  t.after(async () => {
    await sd.close();
    await kv.close();
  });
  const port = await sd.serve('127.0.0.1');
  return { kv, sd, lb, port };
}

async function put(kv: Kv, networkId: string, row: PeerRow): Promise<string> {
  const entry = peerEntry(networkId, row);
  await kv.put(entry.key, entry.value);
  return entry.key;
}

function resolver(port: number): Resolver {
  const r = new Resolver({ timeout: 2_000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  return r;
}

/** One UDP query from a chosen source address (the client identity), without EDNS. */
async function udpQuery(port: number, from: string, name: string, type = TYPE_A): Promise<DecodedResponse> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, from, resolve));
    const answer = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    socket.send(encodeQuery(0x5151, name, type), port, '127.0.0.1');
    return decodeResponse(await answer);
  } finally {
    socket.close();
  }
}

/** One query over TCP (length-prefixed), from 127.0.0.1. */
async function tcpQuery(port: number, name: string): Promise<DecodedResponse> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    const query = encodeQuery(0x5252, name, TYPE_A);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(query.length);
    socket.write(Buffer.concat([prefix, query]));
    let buffered = Buffer.alloc(0);
    for await (const chunk of socket) {
      buffered = Buffer.concat([buffered, chunk as Buffer]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) break;
    }
    return decodeResponse(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
  } finally {
    socket.destroy();
  }
}

test('a task resolves its networks’ names, and KV changes show in the next answer', async (t) => {
  const { kv, sd, port } = await setup(t);
  await put(kv, 'net1', { ip: '10.0.0.11', serviceName: 'web', task: 'a', vip: '10.0.0.2', endpointMode: 'vip' });
  await put(kv, 'net1', { ip: '10.0.0.21', serviceName: 'db', task: 'b', endpointMode: 'dnsrr' });
  const ns = await sd.attach({ containerId: 'c1', netnsPath: '/run/netns/c1', clientIp: '127.0.0.1', attachments: [{ networkId: 'net1', ip: '10.0.0.11' }] });
  assert.deepEqual(ns, { nameserver: '127.0.0.1' });

  const r = resolver(port);
  assert.deepEqual(await r.resolve4('web', { ttl: true }), [{ address: '10.0.0.2', ttl: 0 }]);
  assert.deepEqual(await r.resolve4('tasks.web'), ['10.0.0.11']);
  assert.deepEqual(await r.resolve4('db'), ['10.0.0.21']);
  assert.deepEqual(await r.resolve4('web.1.a'), ['10.0.0.11']);
  await assert.rejects(r.resolve4('nothing'), { code: 'ENOTFOUND' });

  const added = await put(kv, 'net1', { ip: '10.0.0.22', serviceName: 'db', slot: 2, task: 'c', endpointMode: 'dnsrr' });
  await waitFor('the new db task in the answer', async () => (await r.resolve4('db')).length === 2);
  await kv.delete(added);
  await waitFor('the removed db task gone from the answer', async () => (await r.resolve4('db')).length === 1);
  await kv.delete('endpoints/net1', { recurse: true });
  await waitFor('db unknown once its last task is gone', () => r.resolve4('db').then(() => false, (err: { code?: string }) => err.code === 'ENOTFOUND'));
});

test('each client sees only its own networks; a detached client is refused', async (t) => {
  const { kv, sd, port } = await setup(t);
  await put(kv, 'front', { ip: '10.1.0.11', serviceName: 'web', endpointMode: 'dnsrr' });
  await put(kv, 'back', { ip: '10.2.0.11', serviceName: 'db', endpointMode: 'dnsrr' });
  await sd.attach({ containerId: 'web-task', netnsPath: '', clientIp: '127.0.0.2', attachments: [{ networkId: 'front', ip: '10.1.0.11' }] });
  await sd.attach({ containerId: 'api-task', netnsPath: '', clientIp: '127.0.0.3', attachments: [{ networkId: 'front', ip: '10.1.0.12' }, { networkId: 'back', ip: '10.2.0.12' }] });

  assert.deepEqual((await udpQuery(port, '127.0.0.2', 'web')).answers.map((a) => a.data), ['10.1.0.11']);
  assert.equal((await udpQuery(port, '127.0.0.2', 'db')).rcode, 3, 'back is not one of its networks');
  assert.deepEqual((await udpQuery(port, '127.0.0.3', 'db')).answers.map((a) => a.data), ['10.2.0.11']);
  assert.deepEqual((await udpQuery(port, '127.0.0.3', 'web')).answers.map((a) => a.data), ['10.1.0.11']);
  assert.equal((await udpQuery(port, '127.0.0.4', 'web')).rcode, 5, 'not a task: REFUSED');

  await sd.detach('api-task');
  assert.equal((await udpQuery(port, '127.0.0.3', 'db')).rcode, 5);
  await sd.detach('api-task'); // twice is fine
});

test('a network is watched only while an attached task uses it', async (t) => {
  const { kv, sd } = await setup(t);
  const waitingOn = (net: string) => kv.waiting.get(`endpoints/${net}`) ?? 0;
  await put(kv, 'n0', { ip: '10.0.0.1', serviceName: 'elsewhere' }); // a KV that has seen writes
  await sd.attach({ containerId: 'c1', netnsPath: '', clientIp: '127.0.0.2', attachments: [{ networkId: 'n1', ip: '10.0.0.2' }] });
  await sd.attach({ containerId: 'c2', netnsPath: '', clientIp: '127.0.0.3', attachments: [{ networkId: 'n1', ip: '10.0.0.3' }, { networkId: 'n2', ip: '10.9.0.3' }] });
  await waitFor('watches on n1 and n2', () => waitingOn('n1') === 1 && waitingOn('n2') === 1);
  await sd.detach('c2');
  await waitFor('the n2 watch dropped', () => waitingOn('n2') === 0);
  assert.equal(waitingOn('n1'), 1, 'c1 still uses n1');
  await sd.detach('c1');
  await waitFor('the n1 watch dropped', () => waitingOn('n1') === 0);
});

test('VIP tables follow the backends: programmed at attach, updated on change, removed on detach', async (t) => {
  const { kv, sd, lb, port } = await setup(t);
  await put(kv, 'net1', { ip: '10.0.0.11', serviceName: 'web', vip: '10.0.0.2', endpointMode: 'vip' });
  await put(kv, 'net1', { ip: '10.0.0.21', serviceName: 'db', endpointMode: 'dnsrr' });
  await sd.attach({ containerId: 'c1', netnsPath: '/run/netns/t1', clientIp: '127.0.0.2', attachments: [{ networkId: 'net1', ip: '10.0.0.30' }] });
  assert.deepEqual(lb.calls, [{ op: 'apply', netns: '/run/netns/t1', vips: [{ vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11'] }] }], 'dnsrr services get no VIP rule');

  await put(kv, 'net1', { ip: '10.0.0.12', serviceName: 'web', slot: 2, vip: '10.0.0.2', endpointMode: 'vip' });
  await waitFor('the second backend programmed', () => lb.lastApplied('/run/netns/t1')?.[0]?.backends.length === 2);
  assert.deepEqual(lb.lastApplied('/run/netns/t1'), [{ vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11', '10.0.0.12'] }]);
  const applies = lb.calls.length;
  await put(kv, 'net1', { ip: '10.0.0.22', serviceName: 'db', slot: 2, endpointMode: 'dnsrr' });
  await waitFor('the dnsrr change seen', async () => (await udpQuery(port, '127.0.0.2', 'tasks.db')).answers.length === 2);
  // The change only touched a dnsrr service: the VIP table stays as it was, and nft is not run.
  assert.equal(lb.calls.length, applies);

  await sd.detach('c1');
  assert.deepEqual(lb.calls.at(-1), { op: 'remove', netns: '/run/netns/t1' });
  await put(kv, 'net1', { ip: '10.0.0.13', serviceName: 'web', slot: 3, vip: '10.0.0.2', endpointMode: 'vip' });
  assert.equal(lb.calls.filter((c) => c.op === 'apply' && c.vips[0]?.backends.includes('10.0.0.13')).length, 0);
});

test('VIP tables and DNS answers follow the serving flag: a new task joins once it serves, an old one leaves when withdrawn', async (t) => {
  const { kv, sd, lb, port } = await setup(t);
  await put(kv, 'net1', { ip: '10.0.0.11', serviceName: 'web', vip: '10.0.0.2', endpointMode: 'vip' });
  // A new task, published at prepare: reachable, not yet serving.
  await put(kv, 'net1', { ip: '10.0.0.12', serviceName: 'web', slot: 2, task: 'fresh', vip: '10.0.0.2', endpointMode: 'vip', serving: false });
  await sd.attach({ containerId: 'c1', netnsPath: '/run/netns/t1', clientIp: '127.0.0.2', attachments: [{ networkId: 'net1', ip: '10.0.0.30' }] });
  assert.deepEqual(lb.lastApplied('/run/netns/t1'), [{ vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11'] }]);
  assert.deepEqual((await udpQuery(port, '127.0.0.2', 'tasks.web')).answers.map((a) => a.data), ['10.0.0.11']);

  await put(kv, 'net1', { ip: '10.0.0.12', serviceName: 'web', slot: 2, task: 'fresh', vip: '10.0.0.2', endpointMode: 'vip', serving: true });
  await waitFor('the new task a backend once it serves', () => lb.lastApplied('/run/netns/t1')?.[0]?.backends.join() === '10.0.0.11,10.0.0.12');
  // The old one is withdrawn before its stop: gone from the table while its row is still there.
  await put(kv, 'net1', { ip: '10.0.0.11', serviceName: 'web', vip: '10.0.0.2', endpointMode: 'vip', serving: false });
  await waitFor('the withdrawn task out of the VIP table', () => lb.lastApplied('/run/netns/t1')?.[0]?.backends.join() === '10.0.0.12');
  assert.deepEqual((await udpQuery(port, '127.0.0.2', 'tasks.web')).answers.map((a) => a.data), ['10.0.0.12']);
  assert.deepEqual((await udpQuery(port, '127.0.0.2', 'web')).answers.map((a) => a.data), ['10.0.0.2']);
});

test('a task whose VIPs cannot be programmed fails to attach, naming it, and is left detached', async (t) => {
  const { kv, sd, lb, port } = await setup(t);
  await put(kv, 'net1', { ip: '10.0.0.11', serviceName: 'web', vip: '10.0.0.2', endpointMode: 'vip' });
  lb.failWith = new Error('nft: syntax error');
  await assert.rejects(sd.attach({ containerId: 'c9', netnsPath: '/run/netns/t9', clientIp: '127.0.0.2', attachments: [{ networkId: 'net1', ip: '10.0.0.30' }] }), /task c9: cannot program its service VIPs: nft: syntax error/);
  assert.equal((await udpQuery(port, '127.0.0.2', 'web')).rcode, 5);
  await waitFor('no watch left', () => (kv.waiting.get('endpoints/net1') ?? 0) === 0);
});

test('big answers: truncated over plain UDP, whole over TCP and through a real resolver', async (t) => {
  const { kv, sd, port } = await setup(t);
  for (let i = 0; i < 100; i++) await put(kv, 'big', { ip: `10.5.${Math.floor(i / 200)}.${(i % 200) + 1}`, serviceName: 'swarm', slot: i + 1, endpointMode: 'dnsrr' });
  await sd.attach({ containerId: 'c1', netnsPath: '', clientIp: '127.0.0.1', attachments: [{ networkId: 'big', ip: '10.5.1.1' }] });
  const udp = await udpQuery(port, '127.0.0.1', 'swarm');
  assert.equal(udp.truncated, true);
  assert.ok(udp.answers.length < 100);
  const tcp = await tcpQuery(port, 'swarm');
  assert.equal(tcp.truncated, false);
  assert.equal(tcp.answers.length, 100);
  assert.equal((await resolver(port).resolve4('swarm')).length, 100);
});

test('the nameserver handed out is the served address on the client’s subnet', async (t) => {
  const { sd } = await setup(t);
  await sd.serve('127.1.0.1');
  await sd.serve('127.2.0.1', 8);
  assert.equal(sd.nameserverFor('127.0.0.9'), '127.0.0.1', 'same /24');
  assert.equal(sd.nameserverFor('127.1.200.9'), '127.1.0.1', 'same /16');
  assert.equal(sd.nameserverFor('127.200.0.9'), '127.2.0.1', 'inside the /8 given for it');
  const none = await sd.attach({ containerId: 'c', netnsPath: '', clientIp: '10.9.9.9', attachments: [] });
  assert.equal(none, null, 'no served address near the client: no nameserver');
  await sd.unserve('127.2.0.1');
  assert.equal(sd.nameserverFor('127.200.0.9'), undefined);
  await assert.rejects(sd.serve('localhost'), /cannot serve DNS on "localhost": not an IPv4 address/);
  await assert.rejects(sd.attach({ containerId: 'c', netnsPath: '', clientIp: '10.9.9', attachments: [] }), /DNS client address "10.9.9" is not an IPv4 address/);
});
