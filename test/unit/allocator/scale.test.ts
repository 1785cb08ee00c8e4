// Scale: 100,000 tasks across four /16 networks carved from a /8. The bitmaps and the bookkeeping
// must carry it; no timing assertion, the point is that it completes with unique addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Allocator } from '../../../manager/allocator/allocator.js';
import { parseAddressPools } from '../../../manager/allocator/ipam/pool.js';
import { allocateNetwork, networkOwner, networkResources } from '../../../manager/allocator/network.js';
import { AllocationState } from '../../../manager/allocator/state.js';
import { allocateTask, taskOwner } from '../../../manager/allocator/task.js';
import type { Network, Service, Task } from '../../../proto/gen/objects.js';
import { cluster, network, newStore, service, task } from './fixtures.js';

/** A task with only what allocation reads (the protobuf-built fixture costs more than allocating). */
const bareTask = (id: string, s: Service): Task => ({ id, spec: s.spec!.task!, networks: [], status: null }) as unknown as Task;

/** Allocates a network and commits it, as the allocator does around a store transaction. */
function committedNetwork(state: AllocationState, id: string): Network {
  const n = network(id, id);
  const allocated = { ...n, ...allocateNetwork(state, n) };
  state.adoptNetwork(id);
  state.reconcile(networkOwner(id), networkResources(allocated));
  return allocated;
}

test('100,000 task endpoints in four /16 networks from a /8, released and allocated again, never twice', () => {
  const state = new AllocationState(parseAddressPools(['10.0.0.0/8'], 16));
  const networks = ['n0', 'n1', 'n2', 'n3'].map((id) => committedNetwork(state, id));
  assert.deepEqual(networks.map((n) => n.ipam!.configs[0]!.subnet), ['10.0.0.0/16', '10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16']);
  const services = networks.map((n, i) => service(`s${i}`, `svc${i}`, { networks: [n.id] }));
  const held = new Map<string, string>();
  const allocate = (tk: Task, s: (typeof services)[number]) => {
    const { networks: attachments } = allocateTask(state, tk, s);
    const address = `${attachments[0]!.networkId}/${attachments[0]!.addresses[0]}`;
    assert.ok(!held.has(address), `${address} handed out twice`);
    held.set(address, tk.id);
    // Commit: the task now carries the address.
    state.reconcile(taskOwner(tk.id), [{ kind: 'ip', networkId: attachments[0]!.networkId, address: attachments[0]!.addresses[0]! }]);
    return address;
  };
  const addresses: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    const s = services[i % 4]!;
    addresses.push(allocate(bareTask(`t${i}`, s), s));
  }
  assert.deepEqual(networks.map((n) => state.ipam.inUse(n.id)), [25_000, 25_000, 25_000, 25_000]);
  // Half the tasks end; their successors reuse the space without clashing with the survivors.
  for (let i = 0; i < 100_000; i++) {
    if (Math.floor(i / 4) % 2 === 1) continue;
    state.reconcile(taskOwner(`t${i}`), []);
    held.delete(addresses[i]!);
  }
  for (let i = 0; i < 50_000; i++) {
    const s = services[i % 4]!;
    allocate(bareTask(`u${i}`, s), s);
  }
  assert.equal(held.size, 100_000);
  assert.deepEqual(networks.map((n) => state.ipam.inUse(n.id)), [25_000, 25_000, 25_000, 25_000]);
});

test('through the store: 20,000 NEW tasks in /16 networks are allocated in batches and all PENDING', async (t) => {
  const store = newStore();
  await store.update((tx) => tx.create('clusters', cluster(['10.0.0.0/8'], 16)));
  const a = new Allocator(store, { batchSize: 2500 });
  t.after(() => a.stop());
  await a.start();
  const ids = ['n0', 'n1'];
  await store.update((tx) => ids.forEach((id) => tx.create('networks', network(id, id))));
  await a.settled();
  const services = ids.map((n, i) => service(`s${i}`, `svc${i}`, { networks: [n] }));
  await store.update((tx) => services.forEach((s) => tx.create('services', s)));
  for (const s of services) {
    for (let start = 1; start <= 10_000; start += 2500) {
      await store.update((tx) => {
        for (let slot = start; slot < start + 2500; slot++) tx.create('tasks', task(`${s.id}.${slot}`, s, slot));
      });
    }
  }
  await a.settled();
  const seen = new Set<string>();
  let pending = 0;
  for (const tk of store.all('tasks')) {
    if (tk.status?.state === 'PENDING') pending++;
    for (const n of tk.networks) for (const addr of n.addresses) seen.add(`${n.networkId}/${addr}`);
  }
  assert.equal(pending, 20_000);
  assert.equal(seen.size, 20_000);
  assert.deepEqual(ids.map((n) => a.current.ipam.inUse(n)), [10_001, 10_001], 'each network: its tasks and the VIP');
});
