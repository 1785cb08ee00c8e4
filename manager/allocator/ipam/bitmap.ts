// A fixed-size bitmap over 32-bit words, with a scan for the next clear bit that skips full words
// at once: a /8 has 16M addresses, and a 100,000-task service must not cost a bit-by-bit walk.

export class Bitmap {
  private readonly words: Uint32Array;
  private used = 0;

  constructor(readonly size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  get setCount(): number {
    return this.used;
  }

  has(i: number): boolean {
    return (this.words[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  /** Sets bit `i`; false when it was already set. */
  set(i: number): boolean {
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    if ((this.words[w]! & mask) !== 0) return false;
    this.words[w] = this.words[w]! | mask;
    this.used++;
    return true;
  }

  /** Clears bit `i`; false when it was already clear. */
  clear(i: number): boolean {
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    if ((this.words[w]! & mask) === 0) return false;
    this.words[w] = this.words[w]! & ~mask;
    this.used--;
    return true;
  }

  /** The lowest clear bit in [from, to] (inclusive), or -1. */
  findClear(from: number, to: number): number {
    if (from > to) return -1;
    let w = from >>> 5;
    const lastWord = to >>> 5;
    // Treat bits below `from` in the first word as set so they are skipped.
    let word = (this.words[w]! | ((1 << (from & 31)) - 1)) >>> 0;
    for (;;) {
      if (word !== 0xffffffff) {
        const inverted = ~word >>> 0;
        const lowest = inverted & -inverted;
        const i = w * 32 + (31 - Math.clz32(lowest));
        return i <= to ? i : -1;
      }
      if (++w > lastWord) return -1;
      word = this.words[w]!;
    }
  }
}
