// The replicated object store. Every write is a transaction: `update()` runs a function against
// a view of the committed state, collects its creates/updates/removes, and proposes them through
// Raft; every manager then applies the committed entry in log order with `apply()`. Checks happen
// at apply time (an update must name the version it read; names stay unique), so all replicas
// reach the same verdict, and the proposer retries a transaction that lost a race. Reads are
// local and see committed state only.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { StoreTransaction, StoreSnapshot, type StoreAction, type StoreAction_Kind } from '../../proto/gen/objects.js';
import { ACTION_FIELD, INDEXES, KIND, TABLES, TABLE_OF_FIELD, type IndexSpec, type ObjectTypes, type StoreObject, type TableName } from './tables.js';

export type ChangeKind = 'create' | 'update' | 'remove';

export interface StoreEvent<K extends TableName = TableName> {
  kind: ChangeKind;
  table: K;
  object: ObjectTypes[K];
  /** The object as it was before an update or remove. */
  old?: ObjectTypes[K];
  /** The Raft index of the transaction. */
  index: number;
}

/** How the store gets a transaction into the replicated log. */
export interface Proposer {
  /** Resolves once the entry is committed and applied locally; rejects if it never will be. */
  propose(data: Uint8Array): Promise<void>;
}

/** Another state machine riding in the store's log and snapshots (the embedded KV). */
export interface StoreExtension {
  apply(data: Uint8Array, index: number, now: number): unknown;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
export class ExistsError extends Error {
  override name = 'ExistsError';
}

type Tables = { [K in TableName]: Map<string, ObjectTypes[K]> };
type Indexes = { [K in TableName]: Map<string, Map<string, Set<string>>> };

interface Outcome {
  error?: Error;
  result?: unknown;
}

const KIND_OF: Record<StoreAction_Kind, ChangeKind> = { CREATE: 'create', UPDATE: 'update', REMOVE: 'remove' };

/** The read side shared by the store and by a transaction's view. */
export interface ReadView {
  get<K extends TableName>(table: K, id: string): ObjectTypes[K] | undefined;
  find<K extends TableName>(table: K, index: string, key: string): ObjectTypes[K][];
  all<K extends TableName>(table: K): ObjectTypes[K][];
}

export class Tx implements ReadView {
  readonly actions: StoreAction[] = [];
  /** This transaction's writes by table and id (null: removed). */
  private readonly written = new Map<TableName, Map<string, StoreObject | null>>();
  /**
   * This transaction's written objects by index and key, for the indexes looked up in it (most
   * transactions never look anything up), so a lookup costs what it returns rather than a scan
   * of every write (a pass writes thousands). An object
   * changed in place after it was written keeps the keys it was written with (only its desired
   * state ever is, and no reader looks tasks up by desired state inside a transaction).
   */
  private readonly writtenIndex = new Map<TableName, Map<string, Map<string, Set<string>>>>();

  constructor(private readonly base: ReadView) {}

  private writes(table: TableName): Map<string, StoreObject | null> | undefined {
    return this.written.get(table);
  }

  get<K extends TableName>(table: K, id: string): ObjectTypes[K] | undefined {
    const w = this.writes(table);
    if (w?.has(id)) return (w.get(id) ?? undefined) as ObjectTypes[K] | undefined;
    return this.base.get(table, id);
  }

  find<K extends TableName>(table: K, index: string, key: string): ObjectTypes[K][] {
    // Index lookups see committed state patched with this transaction's writes.
    const spec = INDEXES[table][index] as IndexSpec<ObjectTypes[K]> | undefined;
    if (!spec) throw new Error(`no index ${index} on ${table}`);
    const base = this.base.find(table, index, key);
    const w = this.writes(table);
    if (!w) return base;
    const out = base.filter((o) => !w.has(o.id));
    for (const id of this.writtenBy(table, index).get(key) ?? []) {
      const o = w.get(id) as ObjectTypes[K] | null | undefined;
      if (o && spec.keys(o).includes(key)) out.push(o);
    }
    return out;
  }

  all<K extends TableName>(table: K): ObjectTypes[K][] {
    const w = this.writes(table);
    if (!w) return this.base.all(table);
    const out = this.base.all(table).filter((o) => !w.has(o.id));
    for (const o of w.values()) if (o) out.push(o as ObjectTypes[K]);
    return out;
  }

  create<K extends TableName>(table: K, object: ObjectTypes[K]): void {
    if (!object.id) throw new Error(`a ${KIND[table]} needs an id`);
    if (this.get(table, object.id)) throw new ExistsError(`${KIND[table]} ${object.id} already exists`);
    this.push('CREATE', table, object);
  }

  /** `object.meta.version` must be the version read: a concurrent change makes the commit fail. */
  update<K extends TableName>(table: K, object: ObjectTypes[K]): void {
    if (!this.get(table, object.id)) throw new NotFoundError(`${KIND[table]} ${object.id} not found`);
    this.push('UPDATE', table, object);
  }

  remove<K extends TableName>(table: K, id: string): void {
    const current = this.get(table, id);
    if (!current) throw new NotFoundError(`${KIND[table]} ${id} not found`);
    this.push('REMOVE', table, current);
  }

  private push<K extends TableName>(kind: StoreAction_Kind, table: K, object: ObjectTypes[K]): void {
    this.actions.push({ kind, [ACTION_FIELD[table]]: object, target: ACTION_FIELD[table] } as StoreAction);
    let w = this.written.get(table);
    if (!w) this.written.set(table, (w = new Map()));
    w.set(object.id, kind === 'REMOVE' ? null : object);
    if (kind === 'REMOVE') return; // the id stays in the index; find() sees it removed
    const built = this.writtenIndex.get(table);
    if (built) for (const [name, byKey] of built) addKeys(byKey, INDEXES[table][name] as IndexSpec<StoreObject>, object);
  }

  /** This transaction's writes to `table` by the keys of `index`, built when first asked for. */
  private writtenBy(table: TableName, index: string): Map<string, Set<string>> {
    let built = this.writtenIndex.get(table);
    if (!built) this.writtenIndex.set(table, (built = new Map()));
    let byKey = built.get(index);
    if (!byKey) {
      built.set(index, (byKey = new Map()));
      const spec = INDEXES[table][index] as IndexSpec<StoreObject>;
      for (const o of this.written.get(table)?.values() ?? []) if (o) addKeys(byKey, spec, o);
    }
    return byKey;
  }
}

function addKeys(byKey: Map<string, Set<string>>, spec: IndexSpec<StoreObject>, object: StoreObject): void {
  for (const key of spec.keys(object)) {
    let ids = byKey.get(key);
    if (!ids) byKey.set(key, (ids = new Set()));
    ids.add(object.id);
  }
}

export class MemoryStore extends EventEmitter implements ReadView {
  private tables: Tables = emptyTables();
  private indexes: Indexes = emptyIndexes();
  private readonly waiters = new Map<string, (o: Outcome) => void>();
  private readonly extensions = new Map<string, StoreExtension>();
  /** Raft index of the last applied entry. */
  appliedIndex = 0;

  constructor(private proposer: Proposer | null = null, private readonly clock: () => number = Date.now) {
    super();
    this.setMaxListeners(0);
  }

  setProposer(p: Proposer | null): void {
    this.proposer = p;
  }

  registerExtension(kind: string, ext: StoreExtension): void {
    this.extensions.set(kind, ext);
  }

  // ---- reads ------------------------------------------------------------------------------

  get<K extends TableName>(table: K, id: string): ObjectTypes[K] | undefined {
    return this.tables[table].get(id) as ObjectTypes[K] | undefined;
  }

  find<K extends TableName>(table: K, index: string, key: string): ObjectTypes[K][] {
    const idx = this.indexes[table].get(index);
    if (!idx) throw new Error(`no index ${index} on ${table}`);
    const ids = idx.get(key);
    if (!ids) return [];
    const t = this.tables[table];
    return [...ids].map((id) => t.get(id)!) as ObjectTypes[K][];
  }

  all<K extends TableName>(table: K): ObjectTypes[K][] {
    return [...this.tables[table].values()] as ObjectTypes[K][];
  }

  /** A unique-index lookup: the service named `name`, say. */
  byName<K extends TableName>(table: K, name: string): ObjectTypes[K] | undefined {
    return this.find(table, 'name', name)[0];
  }

  // ---- writes -----------------------------------------------------------------------------

  /**
   * Runs `fn` in a transaction and commits it through Raft. A transaction that loses a race
   * (an object it updates changed meanwhile) runs again on fresh state, up to `retries` times.
   */
  async update<R>(fn: (tx: Tx) => R, retries = 5): Promise<R> {
    for (let attempt = 0; ; attempt++) {
      const tx = new Tx(this);
      const result = fn(tx);
      if (tx.actions.length === 0) return result;
      try {
        await this.commit({ actions: tx.actions, extension: new Uint8Array(), extensionKind: '' });
        return result;
      } catch (e) {
        if (e instanceof ConflictError && attempt < retries) continue;
        throw e;
      }
    }
  }

  /**
   * Commits writes a transaction view collected (`new Tx(store)`), once, without re-running
   * anything: for a caller that cuts one decision into several transactions and proposes them
   * together. Rejects with ConflictError when an object changed after it was read.
   */
  async commitActions(actions: StoreAction[]): Promise<void> {
    if (actions.length === 0) return;
    await this.commit({ actions, extension: new Uint8Array(), extensionKind: '' });
  }

  /** Proposes a record for a registered extension; resolves with what its apply returned. */
  async proposeExtension(kind: string, data: Uint8Array): Promise<unknown> {
    return this.commit({ actions: [], extension: data, extensionKind: kind });
  }

  /** Transactions proposed by this replica, by how they ended (for /metrics). */
  readonly proposals = { committed: 0, refused: 0, failed: 0 };

  private async commit(partial: Omit<StoreTransaction, 'requestId' | 'proposedAt'>): Promise<unknown> {
    if (!this.proposer) throw new Error('this manager cannot write: it is not the leader');
    const requestId = randomUUID();
    const txn: StoreTransaction = { ...partial, requestId, proposedAt: this.clock() };
    const outcome = new Promise<Outcome>((resolve) => this.waiters.set(requestId, resolve));
    try {
      await this.proposer.propose(StoreTransaction.encode(txn));
    } catch (e) {
      this.waiters.delete(requestId);
      this.proposals.failed++;
      throw e;
    }
    // propose() resolves after the local apply, which settled the waiter.
    const o = await outcome;
    if (o.error) {
      this.proposals.refused++; // committed, but refused at apply (a stale version, say)
      throw o.error;
    }
    this.proposals.committed++;
    return o.result;
  }

  // ---- the replicated state machine --------------------------------------------------------

  /** Applies one committed entry. Deterministic: the same entries give the same state everywhere. */
  apply(data: Uint8Array, index: number): void {
    const txn = StoreTransaction.decode(data);
    const outcome: Outcome = {};
    try {
      if (txn.extensionKind) {
        const ext = this.extensions.get(txn.extensionKind);
        if (!ext) throw new Error(`no store extension ${txn.extensionKind}`);
        outcome.result = ext.apply(txn.extension, index, txn.proposedAt);
      } else {
        const events = this.applyActions(txn.actions, index, txn.proposedAt);
        for (const ev of events) this.emit('change', ev);
      }
    } catch (e) {
      outcome.error = e as Error;
    }
    this.appliedIndex = index;
    const waiter = this.waiters.get(txn.requestId);
    if (waiter) {
      this.waiters.delete(txn.requestId);
      waiter(outcome);
    }
  }

  private applyActions(actions: StoreAction[], index: number, now: number): StoreEvent[] {
    // Validate everything first, then write: a transaction is all or nothing.
    const staged = new Tx(this);
    const events: StoreEvent[] = [];
    for (const a of actions) {
      const field = a.target;
      if (!field) throw new Error('store action without a target');
      const table = TABLE_OF_FIELD[field]!;
      const object = a[field] as StoreObject;
      const current = staged.get(table, object.id);
      const kind = KIND_OF[a.kind];
      if (kind === 'create') {
        if (current) throw new ExistsError(`${KIND[table]} ${object.id} already exists`);
        object.meta = { version: index, createdAt: now, updatedAt: now };
      } else if (kind === 'update') {
        if (!current) throw new NotFoundError(`${KIND[table]} ${object.id} not found`);
        if ((object.meta?.version ?? 0) !== (current.meta?.version ?? 0)) {
          throw new ConflictError(`${KIND[table]} ${object.id} changed meanwhile (version ${object.meta?.version ?? 0}, now ${current.meta?.version ?? 0})`);
        }
        object.meta = { version: index, createdAt: current.meta?.createdAt ?? now, updatedAt: now };
      } else if (!current) {
        throw new NotFoundError(`${KIND[table]} ${object.id} not found`);
      }
      if (kind !== 'remove') this.checkUnique(staged, table, object);
      if (kind === 'create') staged.create(table, object as never);
      else if (kind === 'update') staged.update(table, object as never);
      else staged.remove(table, object.id);
      events.push({ kind, table, object: kind === 'remove' ? current! : object, old: current, index });
    }
    for (const ev of events) {
      if (ev.kind === 'remove') this.delete(ev.table, ev.object.id);
      else this.put(ev.table, ev.object);
    }
    return events;
  }

  private checkUnique(view: Tx, table: TableName, object: StoreObject): void {
    for (const [name, spec] of Object.entries(INDEXES[table]) as [string, IndexSpec<StoreObject>][]) {
      if (!spec.unique) continue;
      for (const key of spec.keys(object)) {
        const clash = view.find(table, name, key).find((o) => o.id !== object.id);
        if (clash) throw new ExistsError(`${KIND[table]} with ${name} ${JSON.stringify(key)} already exists (${clash.id})`);
      }
    }
  }

  private put(table: TableName, object: StoreObject): void {
    const old = this.tables[table].get(object.id);
    if (old) this.unindex(table, old);
    (this.tables[table] as Map<string, StoreObject>).set(object.id, object);
    for (const [name, spec] of Object.entries(INDEXES[table]) as [string, IndexSpec<StoreObject>][]) {
      const idx = this.indexes[table].get(name)!;
      for (const key of spec.keys(object)) {
        let ids = idx.get(key);
        if (!ids) idx.set(key, (ids = new Set()));
        ids.add(object.id);
      }
    }
  }

  private delete(table: TableName, id: string): void {
    const old = this.tables[table].get(id);
    if (!old) return;
    this.unindex(table, old);
    this.tables[table].delete(id);
  }

  private unindex(table: TableName, object: StoreObject): void {
    for (const [name, spec] of Object.entries(INDEXES[table]) as [string, IndexSpec<StoreObject>][]) {
      const idx = this.indexes[table].get(name)!;
      for (const key of spec.keys(object)) {
        const ids = idx.get(key);
        ids?.delete(object.id);
        if (ids?.size === 0) idx.delete(key);
      }
    }
  }

  // ---- snapshots ---------------------------------------------------------------------------

  snapshot(): Uint8Array {
    const snap: StoreSnapshot = {
      nodes: this.all('nodes'),
      services: this.all('services'),
      tasks: this.all('tasks'),
      networks: this.all('networks'),
      clusters: this.all('clusters'),
      secrets: this.all('secrets'),
      configs: this.all('configs'),
      extension: encodeExtensions(this.extensions),
    };
    return StoreSnapshot.encode(snap);
  }

  /** Replaces the whole state; watchers get a 'restore' event and should re-read everything. */
  restore(data: Uint8Array, index: number): void {
    const snap = StoreSnapshot.decode(data);
    this.tables = emptyTables();
    this.indexes = emptyIndexes();
    for (const table of TABLES) for (const o of snap[table] as StoreObject[]) this.put(table, o);
    decodeExtensions(snap.extension, this.extensions);
    this.appliedIndex = index;
    this.emit('restore', index);
  }

  /** Fails every write still waiting for its entry: leadership was lost. */
  abortPending(reason: Error): void {
    for (const [id, w] of this.waiters) {
      this.waiters.delete(id);
      w({ error: reason });
    }
  }
}

function emptyTables(): Tables {
  return Object.fromEntries(TABLES.map((t) => [t, new Map()])) as unknown as Tables;
}

function emptyIndexes(): Indexes {
  return Object.fromEntries(TABLES.map((t) => [t, new Map(Object.keys(INDEXES[t]).map((n) => [n, new Map()]))])) as unknown as Indexes;
}

// Extension snapshots: a count, then (name length, name, data length, data) for each, sorted by
// name so every replica writes the same bytes.
function encodeExtensions(exts: Map<string, StoreExtension>): Uint8Array {
  const parts: Buffer[] = [];
  const names = [...exts.keys()].sort();
  const head = Buffer.alloc(4);
  head.writeUInt32BE(names.length);
  parts.push(head);
  for (const n of names) {
    const name = Buffer.from(n);
    const data = Buffer.from(exts.get(n)!.snapshot());
    const lens = Buffer.alloc(8);
    lens.writeUInt32BE(name.length, 0);
    lens.writeUInt32BE(data.length, 4);
    parts.push(lens, name, data);
  }
  return Buffer.concat(parts);
}

function decodeExtensions(bytes: Uint8Array, exts: Map<string, StoreExtension>): void {
  if (bytes.length === 0) return;
  const buf = Buffer.from(bytes);
  const count = buf.readUInt32BE(0);
  let off = 4;
  for (let i = 0; i < count; i++) {
    const nameLen = buf.readUInt32BE(off);
    const dataLen = buf.readUInt32BE(off + 4);
    off += 8;
    const name = buf.subarray(off, off + nameLen).toString();
    off += nameLen;
    const data = buf.subarray(off, off + dataLen);
    off += dataLen;
    exts.get(name)?.restore(data);
  }
}

/**
 * A proposer with no Raft behind it: applies each transaction at once at the next index. For a
 * store that is not replicated (tests, tools); the managers use the Raft node's proposer.
 */
export class LocalProposer implements Proposer {
  constructor(private readonly store: MemoryStore) {}

  propose(data: Uint8Array): Promise<void> {
    this.store.apply(data, this.store.appliedIndex + 1);
    return Promise.resolve();
  }
}
