// The simulation's clock: a priority queue of timed callbacks. Ties run in scheduling order, so
// a run is a pure function of its seed.

interface Scheduled {
  time: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  now = 0;
  private heap: Scheduled[] = [];
  private seq = 0;

  at(time: number, run: () => void): void {
    this.push({ time: Math.max(time, this.now), seq: this.seq++, run });
  }

  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run);
  }

  size(): number {
    return this.heap.length;
  }

  /** Run events until `until` (inclusive) or the queue empties. */
  runUntil(until: number, shouldStop: () => boolean = () => false): void {
    while (this.heap.length > 0 && this.heap[0]!.time <= until) {
      const e = this.pop();
      this.now = e.time;
      e.run();
      if (shouldStop()) return;
    }
    this.now = Math.max(this.now, until);
  }

  private less(a: Scheduled, b: Scheduled): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }

  private push(e: Scheduled): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Scheduled {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
