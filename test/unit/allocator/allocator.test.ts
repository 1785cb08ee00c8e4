import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Allocator, PENDING_MESSAGE } from '../../../manager/allocator/allocator.js';
import { VXLAN_ID_OPTION } from '../../../manager/allocator/vni.js';
import { defaultIngressNetwork } from '../../../manager/allocator/network.js';
import { copy } from '../../../manager/store/blank.js';
import { MemoryStore } from '../../../manager/store/memory.js';
import { Service, Task } from '../../../proto/gen/objects.js';
import { cluster, network, newStore, port, service, serviceSpec, setTaskState, task, type ServiceOpts } from './fixtures.js';

async function started(t: TestContext, store: MemoryStore, opts: ConstructorParameters<typeof Allocator>[1] = {}): Promise<Allocator> {
  const a = new Allocator(store, { clock: () => 5000, ...opts });
  t.after(() => a.stop());
  await a.start();
  return a;
}

/** Applies a write and waits until the allocator has reacted to it. */
async function write(a: Allocator, store: MemoryStore, fn: Parameters<MemoryStore['update']>[0]): Promise<void> {
  await store.update(fn);
  await a.settled();
}

async function addService(a: Allocator, store: MemoryStore, id: string, name: string, o: ServiceOpts, replicas = 0): Promise<Service> {
  const s = service(id, name, o);
  await write(a, store, (tx) => {
    tx.create('services', s);
    for (let i = 1; i <= replicas; i++) tx.create('tasks', task(`${id}.${i}`, s, i));
  });
  return s;
}

const addressOf = (t: Task | undefined, networkId: string) => t?.networks.find((n) => n.networkId === networkId)?.addresses[0];

test('a new overlay network gets a /24 from the default pool, its gateway and a VXLAN id; later ones the next', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => {
    tx.create('networks', network('n1', 'front'));
    tx.create('networks', network('n2', 'back'));
  });
  const n1 = store.get('networks', 'n1')!;
  const n2 = store.get('networks', 'n2')!;
  assert.deepEqual(n1.ipam?.configs, [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }]);
  assert.deepEqual(n2.ipam?.configs, [{ subnet: '10.0.1.0/24', gateway: '10.0.1.1', range: '' }]);
  assert.equal(n1.driverState?.name, 'overlay');
  assert.equal(n1.driverState?.options[VXLAN_ID_OPTION], '4096');
  assert.equal(n2.driverState?.options[VXLAN_ID_OPTION], '4097');
});

test('user subnet, gateway and ip-range are honoured; macvlan gets a subnet but no VXLAN id', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => {
    tx.create('networks', network('m', 'lan', { driver: 'macvlan', subnet: '192.168.50.0/24', gateway: '192.168.50.254', range: '192.168.50.64/26', options: { parent: 'eth0' } }));
  });
  const m = store.get('networks', 'm')!;
  assert.deepEqual(m.ipam?.configs, [{ subnet: '192.168.50.0/24', gateway: '192.168.50.254', range: '192.168.50.64/26' }]);
  assert.deepEqual(m.driverState, { name: 'macvlan', options: { parent: 'eth0' } });
  await addService(a, store, 's', 'web', { networks: ['m'] }, 1);
  assert.equal(store.get('services', 's')?.endpoint?.virtualIps[0]?.addr, '192.168.50.64/24');
  assert.equal(addressOf(store.get('tasks', 's.1'), 'm'), '192.168.50.65/24');
});

test('a network whose subnet overlaps another stays unallocated, with an error naming both', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => tx.create('networks', network('n1', 'small', { subnet: '10.1.2.0/24' })));
  await write(a, store, (tx) => tx.create('networks', network('n2', 'big', { subnet: '10.1.0.0/16' })));
  assert.equal(store.get('networks', 'n2')?.ipam, null);
  const err = a.errors.get('network:n2') ?? '';
  assert.match(err, /10\.1\.0\.0\/16 of network "big" \(n2\) overlaps subnet 10\.1\.2\.0\/24 of network "small" \(n1\)/);
  // Once the other network is gone, it fits.
  await write(a, store, (tx) => tx.remove('networks', 'n1'));
  assert.equal(store.get('networks', 'n2')?.ipam?.configs[0]?.subnet, '10.1.0.0/16');
});

test('NEW tasks get an address and MAC per network and move to PENDING; the service a VIP on each', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => {
    tx.create('networks', network('n1', 'front'));
    tx.create('networks', network('n2', 'back'));
  });
  await addService(a, store, 's', 'web', { networks: ['n1', 'n2'], aliases: ['www'] }, 3);
  const svc = store.get('services', 's')!;
  assert.deepEqual(svc.endpoint?.virtualIps, [
    { networkId: 'n1', addr: '10.0.0.2/24' },
    { networkId: 'n2', addr: '10.0.1.2/24' },
  ]);
  const tasks = [1, 2, 3].map((i) => store.get('tasks', `s.${i}`)!);
  for (const tk of tasks) {
    assert.equal(tk.status?.state, 'PENDING');
    assert.equal(tk.status?.message, PENDING_MESSAGE);
    assert.equal(tk.networks.length, 2);
    assert.deepEqual(tk.networks[0]?.aliases, ['www']);
    assert.deepEqual(tk.endpoint?.virtualIps, svc.endpoint?.virtualIps, 'tasks carry the service endpoint');
  }
  // The VIPs took .2 on each network; tasks follow in order.
  assert.deepEqual(tasks[0]!.networks, [
    { networkId: 'n1', addresses: ['10.0.0.3/24'], aliases: ['www'], mac: '02:42:0a:00:00:03', network: null },
    { networkId: 'n2', addresses: ['10.0.1.3/24'], aliases: ['www'], mac: '02:42:0a:00:01:03', network: null },
  ]);
  const all = tasks.flatMap((tk) => tk.networks.flatMap((n) => n.addresses));
  assert.equal(new Set([...all, '10.0.0.2/24', '10.0.1.2/24']).size, 8, 'no address is handed out twice');
});

test('tasks without networks go to PENDING at once, also when the service has no endpoint spec', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await addService(a, store, 's', 'plain', {}, 2);
  const bare = service('b', 'bare');
  bare.spec!.endpoint = null;
  await write(a, store, (tx) => {
    tx.create('services', bare);
    tx.create('tasks', task('b.1', bare, 1));
  });
  for (const id of ['s.1', 's.2', 'b.1']) {
    const tk = store.get('tasks', id)!;
    assert.equal(tk.status?.state, 'PENDING');
    assert.deepEqual(tk.networks, []);
  }
});

test('a full subnet keeps the task NEW with a clear error; a task ending frees its address for it', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  // A /29 has 5 usable addresses beyond the gateway: one VIP and four tasks.
  await write(a, store, (tx) => tx.create('networks', network('n', 'tiny', { subnet: '10.5.0.0/29' })));
  const s = await addService(a, store, 's', 'web', { networks: ['n'] }, 5);
  const states = [1, 2, 3, 4, 5].map((i) => store.get('tasks', `s.${i}`)!.status?.state);
  assert.deepEqual(states.filter((x) => x === 'PENDING').length, 4);
  const stuck = [1, 2, 3, 4, 5].map((i) => store.get('tasks', `s.${i}`)!).find((tk) => tk.status?.state === 'NEW')!;
  assert.match(stuck.status?.err ?? '', /no free address left in subnet 10\.5\.0\.0\/29/);
  const done = [1, 2, 3, 4, 5].map((i) => store.get('tasks', `s.${i}`)!).find((tk) => tk.status?.state === 'PENDING')!;
  const freed = addressOf(done, 'n');
  await setTaskState(store, done.id, 'FAILED');
  await a.settled();
  const now = store.get('tasks', stuck.id)!;
  assert.equal(now.status?.state, 'PENDING');
  assert.equal(now.status?.err, '');
  assert.equal(addressOf(now, 'n'), freed, 'the ended task’s address went to the waiting one');
  // A removed task frees its address too.
  assert.equal(a.current.ipam.inUse('n'), 5);
  await write(a, store, (tx) => tx.remove('tasks', now.id));
  assert.equal(a.current.ipam.inUse('n'), 4);
  await write(a, store, (tx) => tx.create('tasks', task('s.9', s, 9)));
  assert.equal(addressOf(store.get('tasks', 's.9'), 'n'), freed);
});

test('a fresh allocator over the same store (leader failover) hands out no address, VNI or port twice', async (t) => {
  const store = newStore();
  const first = await started(t, store);
  await write(first, store, (tx) => {
    tx.create('networks', network('n1', 'front'));
    tx.create('networks', network('n2', 'back', { subnet: '10.0.1.0/29' }));
  });
  await addService(first, store, 's', 'web', { networks: ['n1', 'n2'], ports: [port(80, 8080), port(81)] }, 3);
  await setTaskState(store, 's.1', 'RUNNING');
  await setTaskState(store, 's.2', 'SHUTDOWN');
  first.stop();

  const second = await started(t, store);
  // The old leader's holdings are all marked: VIP + two live tasks on each network.
  assert.equal(second.current.ipam.inUse('n1'), 3);
  assert.equal(second.current.ipam.inUse('n2'), 3);
  await write(second, store, (tx) => tx.create('networks', network('n3', 'third')));
  const n3 = store.get('networks', 'n3')!;
  assert.equal(n3.ipam?.configs[0]?.subnet, '10.0.2.0/24', 'the pool skips both existing subnets');
  assert.equal(n3.driverState?.options[VXLAN_ID_OPTION], '4098');
  const s = store.get('services', 's')!;
  await write(second, store, (tx) => {
    for (let i = 4; i <= 5; i++) tx.create('tasks', task(`s.${i}`, s, i));
  });
  const live = ['s.1', 's.3', 's.4', 's.5'].map((id) => store.get('tasks', id)!);
  const addresses = live.flatMap((tk) => tk.networks.flatMap((n) => n.addresses)).concat(s.endpoint!.virtualIps.map((v) => v.addr));
  assert.equal(new Set(addresses).size, addresses.length, `duplicates in ${addresses.join(' ')}`);
  // s.2 ended before the failover: its address was free again, and n2 (a /29) needed it.
  assert.ok(addresses.includes(addressOf(store.get('tasks', 's.2'), 'n2')!));
  await addService(second, store, 'o', 'other', { ports: [port(80, 8080)] });
  assert.match(second.errors.get('service:o') ?? '', /port 8080\/tcp is already in use by service "web" \(s\)/);
  assert.equal(store.get('services', 's')!.endpoint?.ports[1]?.publishedPort, 30000);
  await addService(second, store, 'd', 'dyn', { ports: [port(90)] });
  assert.equal(store.get('services', 'd')!.endpoint?.ports[0]?.publishedPort, 30001);
});

test('published ports: explicit honoured, 0 picked from 30000-32767 and kept across updates, host mode left alone', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await addService(a, store, 's', 'web', { ports: [port(80, 8080), port(443), port(53, 0, 'HOST')] });
  const ports = store.get('services', 's')!.endpoint!.ports;
  assert.deepEqual(
    ports.map((p) => [p.targetPort, p.publishedPort, p.publishMode]),
    [
      [80, 8080, 'INGRESS'],
      [443, 30000, 'INGRESS'],
      [53, 0, 'HOST'],
    ],
  );
  await write(a, store, (tx) => {
    const s = copy(Service, tx.get('services', 's')!);
    s.spec = serviceSpec('web', { ports: [port(443), port(8443)] });
    tx.update('services', s);
  });
  const after = store.get('services', 's')!.endpoint!.ports;
  assert.deepEqual(after.map((p) => [p.targetPort, p.publishedPort]), [
    [443, 30000],
    [8443, 30001],
  ]);
  assert.equal(a.current.ports.ownerOf('TCP', 8080), undefined, 'a port dropped from the spec is freed');
});

test('a port conflict leaves the service unallocated and its tasks NEW; removing the holder frees the port', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await addService(a, store, 's1', 'web', { ports: [port(80, 8080)] });
  await addService(a, store, 's2', 'api', { ports: [port(80, 8080)] }, 1);
  assert.match(a.errors.get('service:s2') ?? '', /port 8080\/tcp is already in use by service "web" \(s1\)/);
  assert.equal(store.get('tasks', 's2.1')?.status?.state, 'NEW');
  await write(a, store, (tx) => tx.remove('services', 's1'));
  assert.equal(store.get('services', 's2')!.endpoint?.ports[0]?.publishedPort, 8080);
  assert.equal(store.get('tasks', 's2.1')?.status?.state, 'PENDING');
  assert.equal(a.errors.size, 0);
});

test('services publishing ingress ports get a VIP on the ingress network, and their tasks join it first', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => {
    tx.create('networks', network('ing', 'ingress', { ingress: true }));
    tx.create('networks', network('n1', 'front'));
  });
  await addService(a, store, 's', 'web', { networks: ['n1'], ports: [port(80, 8080)] }, 1);
  await addService(a, store, 'p', 'private', { networks: ['n1'] }, 1);
  assert.deepEqual(store.get('services', 's')!.endpoint!.virtualIps.map((v) => v.networkId), ['ing', 'n1']);
  assert.deepEqual(store.get('tasks', 's.1')!.networks.map((n) => n.networkId), ['ing', 'n1']);
  assert.deepEqual(store.get('tasks', 'p.1')!.networks.map((n) => n.networkId), ['n1']);
});

test('a service and its tasks wait for a missing network and proceed once it is allocated', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await addService(a, store, 's', 'web', { networks: ['late'] }, 1);
  assert.match(a.errors.get('service:s') ?? '', /network late does not exist/);
  assert.equal(store.get('tasks', 's.1')?.status?.state, 'NEW');
  await write(a, store, (tx) => tx.create('networks', network('late', 'late')));
  assert.equal(store.get('services', 's')?.endpoint?.virtualIps[0]?.networkId, 'late');
  assert.equal(store.get('tasks', 's.1')?.status?.state, 'PENDING');
  assert.equal(a.errors.size, 0);
});

test('on start, the backlog found in the store is allocated: networks, then services, then tasks', async (t) => {
  const store = newStore();
  await store.update((tx) => {
    const s = service('s', 'web', { networks: ['n'], ports: [port(80)] });
    tx.create('tasks', task('s.1', s, 1));
    tx.create('services', s);
    tx.create('networks', network('n', 'front'));
  });
  await started(t, store);
  assert.equal(store.get('networks', 'n')?.ipam?.configs[0]?.subnet, '10.0.0.0/24');
  assert.equal(store.get('services', 's')?.endpoint?.ports[0]?.publishedPort, 30000);
  assert.equal(addressOf(store.get('tasks', 's.1'), 'n'), '10.0.0.3/24');
});

test('the pool configuration comes from the cluster object', async (t) => {
  const store = newStore();
  await store.update((tx) => tx.create('clusters', cluster(['172.28.0.0/16'], 26)));
  const a = await started(t, store);
  await write(a, store, (tx) => {
    tx.create('networks', network('n1', 'a'));
    tx.create('networks', network('n2', 'b'));
  });
  assert.equal(store.get('networks', 'n1')!.ipam?.configs[0]?.subnet, '172.28.0.0/26');
  assert.equal(store.get('networks', 'n2')!.ipam?.configs[0]?.subnet, '172.28.0.64/26');
});

test('removing a service frees its VIPs; a task naming a missing network gets an error and stays NEW', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => tx.create('networks', network('n', 'front')));
  await addService(a, store, 's', 'web', { networks: ['n'] });
  assert.equal(a.current.ipam.inUse('n'), 1);
  await write(a, store, (tx) => tx.remove('services', 's'));
  assert.equal(a.current.ipam.inUse('n'), 0);
  const orphan = task('o.1', service('o', 'gone', { networks: ['nope'] }), 1);
  await write(a, store, (tx) => tx.create('tasks', orphan));
  const stuck = store.get('tasks', 'o.1')!;
  assert.equal(stuck.status?.state, 'NEW');
  assert.match(stuck.status?.err ?? '', /network nope does not exist/);
});

test('the default ingress network takes the first pool subnet and routes published ports', async (t) => {
  const store = newStore();
  const a = await started(t, store);
  await write(a, store, (tx) => tx.create('networks', defaultIngressNetwork('ing')));
  const ing = store.get('networks', 'ing')!;
  assert.equal(ing.ipam?.configs[0]?.subnet, '10.0.0.0/24');
  assert.equal(ing.driverState?.options[VXLAN_ID_OPTION], '4096');
  await addService(a, store, 's', 'web', { ports: [port(80, 8080)] }, 1);
  assert.deepEqual(store.get('services', 's')!.endpoint!.virtualIps, [{ networkId: 'ing', addr: '10.0.0.2/24' }]);
  assert.equal(store.get('tasks', 's.1')!.networks[0]?.addresses[0], '10.0.0.3/24');
});

test('transactions that lose a race to another writer are retried without leaking addresses', async (t) => {
  let t0 = 1000;
  const store = new MemoryStore(null, () => t0++);
  // Entries are applied a turn later, as with Raft, so other writers' changes land in between.
  let conflicts = 0;
  store.setProposer({
    propose: (data) =>
      new Promise<void>((resolve) =>
        setImmediate(() => {
          const before = store.appliedIndex;
          store.apply(data, before + 1);
          resolve();
        }),
      ),
  });
  store.on('change', () => {});
  const a = new Allocator(store);
  t.after(() => a.stop());
  await a.start();
  await store.update((tx) => tx.create('networks', network('n', 'front')));
  await a.settled();
  const s = service('s', 'web', { networks: ['n'] });
  await store.update((tx) => tx.create('services', s));
  await a.settled();
  for (let round = 0; round < 5; round++) {
    await store.update((tx) => {
      for (let i = 1; i <= 20; i++) tx.create('tasks', task(`s.${round}.${i}`, s, round * 20 + i));
    });
    // Another writer (the orchestrator) touches the same tasks while the allocator works on them.
    const touch = store
      .update((tx) => {
        for (let i = 1; i <= 20; i++) {
          const tk = copy(Task, tx.get('tasks', `s.${round}.${i}`)!);
          tk.annotations = { name: `touched-${round}`, labels: {} };
          tx.update('tasks', tk);
        }
      }, 20)
      .catch((e: unknown) => {
        conflicts++;
        throw e;
      });
    await Promise.all([touch, a.settled()]);
    await a.settled();
  }
  const tasks = store.all('tasks');
  assert.equal(conflicts, 0);
  assert.ok(tasks.every((tk) => tk.status?.state === 'PENDING'));
  assert.ok(tasks.every((tk) => tk.annotations?.name.startsWith('touched')));
  const addresses = tasks.map((tk) => addressOf(tk, 'n'));
  assert.equal(new Set(addresses).size, 100);
  assert.equal(a.current.ipam.inUse('n'), 101, 'tasks and the VIP, nothing leaked by retried attempts');
});
