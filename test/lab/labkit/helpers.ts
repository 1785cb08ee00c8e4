// Helpers for tests that build labs: run the deploy/lab CLI, snapshot what the machine looks like
// (namespaces, root links, mounts), await conditions.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runQuiet } from '../../../deploy/labkit/run.js';

/** The checkout (tests run from dist/test/lab/labkit/). */
export const repo = fileURLToPath(new URL('../../../../', import.meta.url));
export const labBin = `${repo}deploy/lab`;

/** A lab name of this test process, so parallel runs and a developer's lab never collide. */
export function testLabName(tag: string): string {
  return `lt${process.pid}-${tag}`;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function lab(args: string[]): Promise<CliResult> {
  return runQuiet([labBin, ...args]);
}

/** A child of the test, SIGKILLed when the test ends (so a failing test cannot leave it running). */
export function labChild(t: { after: (fn: () => void) => void }, args: string[]): ChildProcess {
  const child = spawn(labBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** How `child` ended; fails after `timeoutMs` instead of hanging the test. */
export async function exited(child: ChildProcess, timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const ac = new AbortController();
  try {
    return await Promise.race([
      new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
      delay(timeoutMs, undefined, { signal: ac.signal }).then(() => {
        throw new Error(`process ${child.pid} (${child.spawnargs.join(' ')}) still running after ${timeoutMs} ms`);
      }),
    ]);
  } finally {
    ac.abort();
  }
}

export interface Snapshot {
  netns: string[];
  rootLinks: string[];
  mounts: string[];
}

/** What the machine looks like from the root namespace. */
export async function snapshot(): Promise<Snapshot> {
  const netns = (await runQuiet(['ip', 'netns', 'list'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[0]!) // drop "(id: N)": ids are assigned lazily and say nothing about ownership
    .sort();
  const rootLinks = (await runQuiet(['ip', '-o', 'link'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':').slice(0, 2).join(':')) // "4: eth0": index and name; flags may change on their own
    .sort();
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter(Boolean).sort();
  return { netns, rootLinks, mounts };
}

/**
 * The part of a snapshot that can belong to lab `name`. Other test files may build namespaces at
 * the same time, so namespace and mount lists are compared on this part; root links are compared
 * whole (nothing may add links to the root namespace).
 */
export function ofLab(s: Snapshot, name: string): Snapshot {
  return {
    netns: s.netns.filter((n) => n.startsWith(`${name}-`)),
    rootLinks: s.rootLinks,
    mounts: s.mounts.filter((m) => m.includes(`/netns/${name}-`) || m.includes(`/shoal-lab/${name}/`)),
  };
}

/** Polls `cond` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}
