// What the task controller needs from the image store: the image present (loaded or pulled), its
// config, and a root filesystem per container. An interface so unit tests can fake it and so the
// controller does not care how images arrive.
import { ImageNotFoundError, type ImageStore, type PullOptions } from '../runtime/image/store.js';
import type { ImageInfo } from './containerspec.js';

export interface ImageProvider {
  /** Makes sure the image is on this node; throws ImageUnavailableError ("No such image: x") if it cannot be had. */
  ensure(reference: string): Promise<ImageInfo>;
  /** Mounts (or finds mounted) the container's root filesystem at `dir`; returns its path. */
  prepareRootfs(reference: string, containerId: string, dir: string): Promise<string>;
  /** Unmounts and deletes the container's writable layer; a no-op when there is none. */
  releaseRootfs(containerId: string): Promise<void>;
}

export class ImageUnavailableError extends Error {
  constructor(
    readonly reference: string,
    cause?: unknown,
  ) {
    super(`No such image: ${reference}`, { cause });
    this.name = 'ImageUnavailableError';
  }
}

/**
 * - `missing` (default): use the local image when there is one, pull otherwise.
 * - `always`: pull first (Docker's agent does, to follow mutable tags), fall back to a local copy.
 * - `never`: local images only.
 */
export type PullPolicy = 'missing' | 'always' | 'never';

export interface ImageStoreProviderOptions {
  pull?: PullPolicy;
  /** Registry options per pull (auth, insecure registries). */
  pullOptions?: (reference: string) => PullOptions;
}

export class ImageStoreProvider implements ImageProvider {
  /** Lookups (and pulls) under way by reference: the tasks of one service resolve their image once. */
  private readonly resolving = new Map<string, Promise<ImageInfo>>();

  constructor(
    private readonly store: ImageStore,
    private readonly options: ImageStoreProviderOptions = {},
  ) {}

  ensure(reference: string): Promise<ImageInfo> {
    const pending = this.resolving.get(reference);
    if (pending) return pending;
    const p = this.resolve(reference).finally(() => this.resolving.delete(reference));
    this.resolving.set(reference, p);
    return p;
  }

  private async resolve(reference: string): Promise<ImageInfo> {
    const policy = this.options.pull ?? 'missing';
    let local = policy === 'always' ? undefined : await this.store.find(reference);
    let pullError: unknown;
    if (!local && policy !== 'never') {
      try {
        local = await this.store.pull(reference, this.options.pullOptions?.(reference) ?? {});
      } catch (err) {
        pullError = err;
        local = await this.store.find(reference);
      }
    }
    if (!local) throw new ImageUnavailableError(reference, pullError);
    return { id: local.id, config: local.config };
  }

  async prepareRootfs(reference: string, containerId: string, dir: string): Promise<string> {
    try {
      return (await this.store.prepareRootfs(reference, containerId, dir)).path;
    } catch (err) {
      if (err instanceof ImageNotFoundError) throw new ImageUnavailableError(reference, err);
      throw err;
    }
  }

  async releaseRootfs(containerId: string): Promise<void> {
    await this.store.releaseRootfs(containerId);
  }
}
