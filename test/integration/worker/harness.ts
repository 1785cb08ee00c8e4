// A worker over the real runtime (runc + conmon), the real image store holding the test image
// (busybox, built from the machine's busybox-static) and real network namespaces. Cleanup runs in
// a fixed order even when the test fails: workers closed, then the runtime harness's cleanup
// (containers, conmons, mounts, cgroups), then the test's network namespaces, then the files.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { buildTestImage } from '../../../deploy/image/build.js';
import { ImageStore } from '../../../agent/runtime/image/store.js';
import { RuncRuntime } from '../../../agent/runtime/runc/runtime.js';
import { ImageStoreProvider } from '../../../agent/worker/images.js';
import { NetnsNetworkAttacher } from '../../../agent/worker/network.js';
import { MemoryStatusReporter } from '../../../agent/worker/reporter.js';
import { Worker } from '../../../agent/worker/worker.js';
import { cleanupRoot } from '../runtime/harness.js';

export interface WorkerFixture {
  root: string;
  cgroupParent: string;
  dataDir: string;
  /** The shared image store's root, for a worker in another process. */
  storeRoot: string;
  netnsPrefix: string;
  runtime: RuncRuntime;
  images: ImageStoreProvider;
  network: NetnsNetworkAttacher;
  reporter: MemoryStatusReporter;
  worker: Worker;
  /** Another worker (and runtime instance) over the same directories: an agent restart. */
  restart(): Promise<Worker>;
}

export async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  return (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
}

let shared: Promise<{ dir: string; store: ImageStore }> | undefined;

/**
 * One image store with the test image loaded, shared by a test file's tests (building and loading
 * the image is most of a test's setup). Containers' rootfs mounts stay under each test's own root.
 * Call disposeImageStore() from the file's after() hook.
 */
function sharedImageStore(): Promise<ImageStore> {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-worker-images-'));
    const store = new ImageStore(join(dir, 'store'));
    buildTestImage({ outDir: join(dir, 'busybox') });
    await store.load(join(dir, 'busybox'));
    return { dir, store };
  })();
  return shared.then((s) => s.store);
}

export async function disposeImageStore(): Promise<void> {
  if (!shared) return;
  const { dir } = await shared;
  shared = undefined;
  await rm(dir, { recursive: true, force: true });
}

export async function setupWorker(t: TestContext): Promise<WorkerFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-worker-'));
  // Everything mounted (the containers' rootfs) lives under root, which the runtime harness's cleanup unmounts.
  const root = join(dir, 'root');
  const cgroupParent = `/shoal-test-${dir.slice(-6)}`;
  const netnsPrefix = `shwt${randomBytes(3).toString('hex')}-`;
  const runtimes: RuncRuntime[] = [];
  const workers: Worker[] = [];
  t.after(async () => {
    for (const w of workers) await w.close().catch(() => undefined);
    for (const r of runtimes) await r.close();
    await cleanupRoot(root, cgroupParent);
    for (const name of await netnsWithPrefix(netnsPrefix)) execFileSync('ip', ['netns', 'delete', name]);
    await rm(dir, { recursive: true, force: true });
  });
  const newRuntime = (): RuncRuntime => {
    const r = new RuncRuntime({ root, cgroupParent, pollMs: 50 });
    runtimes.push(r);
    return r;
  };
  const store = await sharedImageStore();
  // No registry in tests: an image that is not loaded is missing, at once.
  const images = new ImageStoreProvider(store, { pull: 'never' });
  const network = new NetnsNetworkAttacher({ prefix: netnsPrefix });
  const reporter = new MemoryStatusReporter();
  const dataDir = join(root, 'worker');
  const newWorker = async (): Promise<Worker> => {
    const w = new Worker({ dataDir, runtime: newRuntime(), images, network, reporter });
    workers.push(w);
    await w.init();
    return w;
  };
  const worker = await newWorker();
  return { root, cgroupParent, dataDir, storeRoot: store.root, netnsPrefix, runtime: runtimes[0] as RuncRuntime, images, network, reporter, worker, restart: newWorker };
}
