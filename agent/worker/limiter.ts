// How many tasks prepare or start their containers at once on this node. Creating a container is
// a burst of process spawns (mount, conmon, runc create: namespaces, cgroups, pivot_root) that
// competes for the same few CPUs; fifty at once make every one of them slow and the first task
// as late as the last. A bound keeps each start short, and starts go ahead of prepares, so a
// task that is ready becomes RUNNING (and is reported) without waiting for the rest to prepare.
export type Priority = 'high' | 'normal';

export class Limiter {
  private active = 0;
  private readonly queues: Record<Priority, Array<() => void>> = { high: [], normal: [] };

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`invalid concurrency limit ${limit}: expected a whole number of at least 1`);
  }

  /** Runs fn when a slot is free (high priority first, then in arrival order). */
  async run<T>(fn: () => Promise<T>, priority: Priority = 'normal'): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queues[priority].push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.queues.high.shift() ?? this.queues.normal.shift();
      // The slot passes straight to the next waiter: nobody can overtake it in between.
      if (next) next();
      else this.active--;
    }
  }

  /** Tasks waiting for a slot. */
  get waiting(): number {
    return this.queues.high.length + this.queues.normal.length;
  }
}
