// Gathers requests from many agents into few store transactions. Every agent call that writes
// (a session registering its node, a task status report, a node marked DOWN) is small, and a
// thousand of them made one Raft entry each: a round of consensus, an fsync and an apply per
// call. Here, requests made while a write is in flight wait for it and then go together in the
// next one, as swarmkit's dispatcher batches status updates: under load the batches grow, at rest
// a request is written at once.

/** Writes one batch; returns one result per request, in order. */
export type BatchWrite<Req, Res> = (requests: Req[]) => Promise<Res[]>;

interface Pending<Req, Res> {
  request: Req;
  resolve: (r: Res) => void;
  reject: (e: Error) => void;
}

export class WriteBatcher<Req, Res> {
  private queue: Pending<Req, Res>[] = [];
  private writing = false;
  private scheduled = false;

  /**
   * `maxPerWrite` bounds one transaction (one Raft entry), counting each request as `weight` says
   * (its objects written); a backlog bigger than that is written as several transactions proposed
   * together.
   */
  constructor(
    private readonly write: BatchWrite<Req, Res>,
    private readonly maxPerWrite: number,
    private readonly weight: (r: Req) => number = () => 1,
  ) {}

  /** Resolves with the request's result once the transaction holding it committed. */
  add(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.schedule();
    });
  }

  /** Fails everything still queued (leadership lost). */
  failAll(err: Error): void {
    const queue = this.queue;
    this.queue = [];
    for (const p of queue) p.reject(err);
  }

  private async writeChunk(chunk: Pending<Req, Res>[]): Promise<void> {
    try {
      const results = await this.write(chunk.map((p) => p.request));
      chunk.forEach((p, i) => p.resolve(results[i]!));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const p of chunk) p.reject(err);
    }
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    this.scheduled = true;
    // Requests that arrive in the same turn of the event loop go together.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.queue.length === 0) return;
    this.writing = true;
    const queue = this.queue;
    this.queue = [];
    const chunks: Pending<Req, Res>[][] = [];
    let chunk: Pending<Req, Res>[] = [];
    let size = 0;
    for (const p of queue) {
      const w = this.weight(p.request);
      if (chunk.length > 0 && size + w > this.maxPerWrite) {
        chunks.push(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(p);
      size += w;
    }
    if (chunk.length > 0) chunks.push(chunk);
    const writes: Promise<void>[] = [];
    for (const c of chunks) {
      // Each write is encoded when proposed: the event loop gets a turn between them.
      if (writes.length > 0) await new Promise((r) => setImmediate(r));
      writes.push(this.writeChunk(c));
    }
    await Promise.all(writes);
    this.writing = false;
    if (this.queue.length > 0) this.schedule();
  }
}
