// Durable Raft storage: WAL segments with group commit, snapshot files, and DiskStorage, the
// core's Storage backed by both.
export { DiskStorage, type DiskStorageOptions, type DiskStorageOpenInfo } from './disk-storage.js';
export { Wal, type WalOptions, type WalState, type WalStats, type SnapshotMarker } from './wal.js';
export { Snapshotter, type SnapshotFile } from './snapshotter.js';
export { StorageCorruptionError, StorageFailedError } from './errors.js';
export { nodeFs, type StorageFs, type FileHandleLike } from './fs.js';
export { forceNewCluster, ForceNewClusterError, type ForceNewClusterResult } from './force-new-cluster.js';
