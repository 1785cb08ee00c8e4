// Errors storage raises. Corruption is fatal by design: a manager that silently drops an
// acknowledged entry or vote can break Raft's safety for the whole cluster, so it refuses to
// start and says exactly where the damage is.

export class StorageCorruptionError extends Error {
  constructor(
    /** The damaged file. */
    readonly file: string,
    /** Byte offset of the first bad record in that file. */
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `raft storage: ${file} is corrupt at byte offset ${offset}: ${reason}; refusing to start ` +
        `(restore the file, or remove this manager's raft data and re-join it to the cluster)`,
    );
    this.name = 'StorageCorruptionError';
  }
}

/** A write or fsync failed earlier: the log may be behind memory, so nothing more is accepted. */
export class StorageFailedError extends Error {
  constructor(cause: unknown) {
    super(`raft storage: an earlier write failed, storage is closed to writes: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StorageFailedError';
  }
}
