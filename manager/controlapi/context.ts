// What every control API call works with: the manager's store, and the few things outside it.
import { newId } from '../ca/ca.js';
import type { MemoryStore } from '../store/memory.js';

/** The Raft membership as node calls see it (the manager's RaftNode, or a stand-in in tests). */
export interface RaftMembership {
  /** Raft ids of the current members. */
  memberIds(): number[];
  /**
   * Which members answered recently, by Raft id (the leader's view); an empty map when this
   * manager does not know (then every member counts as reachable).
   */
  reachability(): Map<number, boolean>;
  /** The Raft id of the current leader, 0 when there is none. */
  leader(): number;
}

export interface ControlContext {
  store: MemoryStore;
  /** Ids for new services and networks: Docker's 25-character ids unless a test fixes them. */
  newId?: () => string;
  /** The wall clock, for update status times. */
  now?: () => number;
  /** Raft membership, needed by node demotion and removal. */
  raft?: RaftMembership;
}

export const idOf = (ctx: ControlContext): string => (ctx.newId ?? newId)();
export const nowOf = (ctx: ControlContext): number => (ctx.now ?? Date.now)();
