// Signal names as users write them (TERM, SIGTERM, sigterm, 15) → the SIG-prefixed name runc
// and process.kill accept.
import { constants } from 'node:os';

const SIGNALS = constants.signals as Record<string, number>;

export function normalizeSignal(signal: string | number): string {
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const n = Number(signal);
    const name = Object.keys(SIGNALS).find((k) => SIGNALS[k] === n);
    if (!name) throw new Error(`unknown signal: ${signal}`);
    return name;
  }
  const upper = signal.trim().toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!(name in SIGNALS)) throw new Error(`unknown signal: "${signal}" (expected a name such as SIGTERM, TERM or a number)`);
  return name;
}

export function signalNumber(signal: string | number): number {
  return SIGNALS[normalizeSignal(signal)];
}
