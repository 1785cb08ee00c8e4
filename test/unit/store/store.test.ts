import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, LocalProposer, ConflictError, ExistsError, type StoreEvent, type Proposer } from '../../../manager/store/memory.js';
import { blank, copy } from '../../../manager/store/blank.js';
import { Service, Task, Annotations, ServiceSpec, StoreTransaction } from '../../../proto/gen/objects.js';

function newStore(): MemoryStore {
  let t = 1000;
  const s = new MemoryStore(null, () => t++);
  s.setProposer(new LocalProposer(s));
  return s;
}

const service = (id: string, name: string) => blank(Service, { id, spec: blank(ServiceSpec, { annotations: blank(Annotations, { name }) }) });
const task = (id: string, serviceId: string, slot: number, nodeId = '') => blank(Task, { id, serviceId, slot, nodeId, desiredState: 'RUNNING' });

test('create stamps meta from the log index and the proposer clock, and emits events', async () => {
  const s = newStore();
  const events: StoreEvent[] = [];
  s.on('change', (e: StoreEvent) => events.push(e));
  await s.update((tx) => tx.create('services', service('s1', 'web')));
  const got = s.get('services', 's1')!;
  assert.equal(got.meta?.version, 1);
  assert.equal(got.meta?.createdAt, 1000);
  assert.deepEqual(events.map((e) => [e.kind, e.table, e.object.id, e.index]), [['create', 'services', 's1', 1]]);
});

test('indexes find tasks by service, node and slot, and follow updates', async () => {
  const s = newStore();
  await s.update((tx) => {
    for (let i = 1; i <= 3; i++) tx.create('tasks', task(`t${i}`, 'svc', i, i === 3 ? 'n2' : 'n1'));
  });
  assert.deepEqual(s.find('tasks', 'service', 'svc').map((t) => t.id).sort(), ['t1', 't2', 't3']);
  assert.deepEqual(s.find('tasks', 'node', 'n1').map((t) => t.id).sort(), ['t1', 't2']);
  assert.deepEqual(s.find('tasks', 'slot', 'svc/2').map((t) => t.id), ['t2']);
  const t2 = copy(Task, s.get('tasks', 't2')!);
  t2.nodeId = 'n2';
  await s.update((tx) => tx.update('tasks', t2));
  assert.deepEqual(s.find('tasks', 'node', 'n2').map((t) => t.id).sort(), ['t2', 't3']);
  await s.update((tx) => tx.remove('tasks', 't3'));
  assert.deepEqual(s.find('tasks', 'node', 'n2').map((t) => t.id), ['t2']);
  assert.equal(s.get('tasks', 't3'), undefined);
});

test('a transaction sees its own writes before commit', async () => {
  const s = newStore();
  await s.update((tx) => {
    tx.create('tasks', task('a', 'svc', 1));
    assert.equal(tx.find('tasks', 'service', 'svc').length, 1);
    tx.remove('tasks', 'a');
    assert.equal(tx.get('tasks', 'a'), undefined);
    tx.create('tasks', task('b', 'svc', 2));
  });
  assert.deepEqual(s.all('tasks').map((t) => t.id), ['b']);
});

test('lookups in a transaction follow its writes: keys moved, objects removed, index built before or after', async () => {
  const s = newStore();
  await s.update((tx) => {
    for (let i = 1; i <= 3; i++) tx.create('tasks', task(`t${i}`, 'svc', i, 'n1'));
  });
  const ids = (list: Task[]) => list.map((t) => t.id).sort();
  await s.update((tx) => {
    // Looked up before any write, then after each: the index of this transaction's writes is kept current.
    assert.deepEqual(ids(tx.find('tasks', 'node', 'n1')), ['t1', 't2', 't3']);
    tx.update('tasks', { ...s.get('tasks', 't1')!, nodeId: 'n2' });
    assert.deepEqual(ids(tx.find('tasks', 'node', 'n1')), ['t2', 't3']);
    assert.deepEqual(ids(tx.find('tasks', 'node', 'n2')), ['t1']);
    tx.remove('tasks', 't2');
    tx.create('tasks', task('t4', 'svc', 4, 'n2'));
    assert.deepEqual(ids(tx.find('tasks', 'node', 'n1')), ['t3']);
    assert.deepEqual(ids(tx.find('tasks', 'node', 'n2')), ['t1', 't4']);
    // An index first asked for after the writes is built from them.
    assert.deepEqual(ids(tx.find('tasks', 'slot', 'svc/4')), ['t4']);
    assert.deepEqual(ids(tx.find('tasks', 'slot', 'svc/2')), []);
    assert.deepEqual(ids(tx.all('tasks')), ['t1', 't3', 't4']);
  });
  assert.deepEqual(ids(s.find('tasks', 'node', 'n2')), ['t1', 't4']);
});

test('commitActions commits what a transaction view collected, once; a stale write is refused, not retried', async () => {
  const s = newStore();
  await s.update((tx) => tx.create('tasks', task('a', 'svc', 1)));
  const { Tx } = await import('../../../manager/store/memory.js');
  const stale = new Tx(s);
  stale.update('tasks', { ...s.get('tasks', 'a')!, nodeId: 'n1' });
  const fresh = new Tx(s);
  fresh.update('tasks', { ...s.get('tasks', 'a')!, nodeId: 'n2' });
  await s.commitActions(fresh.actions);
  await assert.rejects(s.commitActions(stale.actions), ConflictError);
  assert.equal(s.get('tasks', 'a')!.nodeId, 'n2');
});

test('names are unique, and a failed transaction changes nothing', async () => {
  const s = newStore();
  await s.update((tx) => tx.create('services', service('s1', 'web')));
  await assert.rejects(
    s.update((tx) => {
      tx.create('services', service('s2', 'db'));
      tx.create('services', service('s3', 'web'));
    }),
    (e: unknown) => e instanceof ExistsError && /service with name "web" already exists/.test(e.message),
  );
  assert.deepEqual(s.all('services').map((x) => x.id), ['s1']);
  assert.equal(s.byName('services', 'db'), undefined);
});

test('an update of a stale version conflicts at apply, and update() retries on fresh state', async () => {
  const s = newStore();
  await s.update((tx) => tx.create('services', service('s1', 'web')));
  const stale = copy(Service, s.get('services', 's1')!);
  const fresh = copy(Service, stale);
  fresh.specVersion = 7;
  await s.update((tx) => tx.update('services', fresh));
  // A raw single attempt with the stale copy is refused by every replica's apply.
  await assert.rejects(s.update((tx) => tx.update('services', stale), 0), ConflictError);
  // With retries, the function re-reads and wins.
  let runs = 0;
  const other = copy(Service, s.get('services', 's1')!);
  await s.update((tx) => {
    runs++;
    const cur = runs === 1 ? other : copy(Service, tx.get('services', 's1')!);
    if (runs === 1) {
      // someone else commits in between this read and our commit
      const meanwhile = copy(Service, s.get('services', 's1')!);
      meanwhile.specVersion = 8;
      s.apply(encodeOne(meanwhile), s.appliedIndex + 1);
    }
    cur.specVersion += 100;
    tx.update('services', cur);
  });
  assert.equal(runs, 2);
  assert.equal(s.get('services', 's1')!.specVersion, 108);
});

test('two replicas applying the same entries end in the same state; snapshots restore it', async () => {
  const log: Uint8Array[] = [];
  const leader = new MemoryStore(null, () => 5);
  const recorder: Proposer = {
    propose: (data) => {
      log.push(data);
      leader.apply(data, log.length);
      return Promise.resolve();
    },
  };
  leader.setProposer(recorder);
  await leader.update((tx) => tx.create('services', service('s1', 'web')));
  await leader.update((tx) => {
    for (let i = 1; i <= 5; i++) tx.create('tasks', task(`t${i}`, 's1', i));
  });
  await assert.rejects(leader.update((tx) => tx.create('services', service('s2', 'web'))));
  const follower = new MemoryStore();
  log.forEach((e, i) => follower.apply(e, i + 1));
  assert.deepEqual(Buffer.from(follower.snapshot()), Buffer.from(leader.snapshot()));
  const restored = new MemoryStore();
  restored.restore(leader.snapshot(), leader.appliedIndex);
  assert.deepEqual(restored.find('tasks', 'service', 's1').length, 5);
  assert.deepEqual(Buffer.from(restored.snapshot()), Buffer.from(leader.snapshot()));
});

test('writes without a proposer (a follower) are refused clearly', async () => {
  const s = new MemoryStore();
  await assert.rejects(s.update((tx) => tx.create('services', service('s1', 'web'))), /not the leader/);
});

function encodeOne(svc: Service): Uint8Array {
  return StoreTransaction.encode({ actions: [{ kind: 'UPDATE', service: svc, target: 'service' }], extension: new Uint8Array(), extensionKind: '', requestId: 'x', proposedAt: 1 });
}
