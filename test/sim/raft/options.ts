// Default simulation options for a seed (shared by the CLI and the CI test).
import type { SimOptions } from './cluster.js';

export function simOptionsFor(seed: number, over: Partial<SimOptions> = {}): SimOptions {
  return { seed, nodes: seed % 2 === 0 ? 3 : 5, duration: 20_000, calm: 3_000, clients: 4, ...over };
}
