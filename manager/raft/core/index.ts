// The Raft consensus core: pure and deterministic. See rawnode.ts for the driving loop.
export { RawNode, type Ready, type Status, type ProgressStatus } from './rawnode.js';
export { Raft, StateType, CAMPAIGN_TRANSFER, type RaftConfig, type SoftState } from './raft.js';
export { MemoryStorage, limitSize, cloneConfState, type Storage, type InitialState } from './storage.js';
export {
  ConfChangeType,
  ConfChangeTransition,
  ConfChangeError,
  confChange,
  leaveJointChange,
  isLeaveJoint,
  encodeConfChange,
  decodeConfChange,
  type ConfChangeV2,
  type ConfChangeSingle,
} from './confchange.js';
export { ProgressState } from './tracker.js';
export * from './errors.js';
export { SeededRandom, emptyConfState, type RandomSource } from './util.js';
