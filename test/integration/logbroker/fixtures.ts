// What the log broker's integration tests share: a founding manager on a free loopback port, node
// certificates, a temp dir that goes away with the test, and containers' log files laid out the
// way the runc runtime leaves them.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Manager, newRaftId } from '../../../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../../../manager/ca/ca.js';
import type { Layout } from '../../../agent/runtime/runc/layout.js';
import { containerIdFor } from '../../../agent/worker/naming.js';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function issue(ca: RootCA, nodeId: string, role: 'manager' | 'worker'): { key: string; cert: string } {
  const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
  return { key: keyPem, cert: ca.issue(csrPem, { nodeId, role }) };
}

/**
 * A temp dir and a list of cleanups, run in reverse when the test ends (pass or fail), before the
 * dir is removed.
 */
export async function scratch(t: TestContext, tag: string): Promise<{ dir: string; cleanup: Array<() => Promise<void> | void> }> {
  const dir = await mkdtemp(join(tmpdir(), `shoal-${tag}-`));
  const cleanup: Array<() => Promise<void> | void> = [];
  t.after(async () => {
    for (const c of cleanup.reverse()) await c();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, cleanup };
}

/** A one-manager cluster's founder on a loopback port, stopped when the test ends. */
export async function foundCluster(dir: string, cleanup: Array<() => Promise<void> | void>, hostname: string) {
  const ca = RootCA.create();
  const nodeId = newId();
  const certs = issue(ca, nodeId, 'manager');
  const port = await freePort();
  const manager = await Manager.start({
    nodeId,
    raftId: newRaftId(),
    dataDir: join(dir, hostname),
    listenAddr: `127.0.0.1:${port}`,
    advertiseAddr: `127.0.0.1:${port}`,
    hostname,
    certs: { ca: ca.certPem, ...certs },
    bootstrap: { rootCA: ca },
    tickMs: 20,
  });
  cleanup.push(() => manager.stop().catch(() => undefined));
  return { ca, manager, certs };
}

/** conmon's k8s-file line, at second `second` of 2024-05-01T10:00 (plus 123 ns). */
export const k8s = (second: number, stream: 'stdout' | 'stderr', text: string): string => `2024-05-01T10:00:0${second}.000000123+00:00 ${stream} F ${text}\n`;

/** A container's files as the runc runtime leaves them: meta.json, ctr.log[.N], exits/<id> once exited. */
export async function fakeContainer(layout: Layout, taskId: string, live: string, rotated: string[] = [], exited = true): Promise<string> {
  const paths = layout.container(containerIdFor(taskId));
  await mkdir(paths.exitDir, { recursive: true });
  await writeFile(paths.meta, '{}');
  await writeFile(paths.log, live);
  for (const [i, text] of rotated.entries()) await writeFile(`${paths.log}.${i + 1}`, text);
  if (exited) await writeFile(paths.exitFile, '0');
  return paths.log;
}
