// Membership changes (etcd's ConfChangeV2 and confchange.Changer): one voter at a time ("simple"),
// or several at once through joint consensus (enter joint C_old,new, then leave to C_new), with
// learners that receive the log without voting.
import type { ConfState, NodeId } from '../types.js';
import { Progress, cloneTrackerConfig, emptyTrackerConfig, type ProgressTracker, type TrackerConfig } from './tracker.js';

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  AddLearnerNode = 2,
}

export enum ConfChangeTransition {
  /** One change: simple; several: joint, left automatically once applied. */
  Auto = 0,
  /** Joint, left automatically. */
  JointImplicit = 1,
  /** Joint, left only when the application proposes an empty ConfChangeV2. */
  JointExplicit = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

export interface ConfChangeV2 {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  /** Opaque to raft (e.g. the new member's address). */
  context: Uint8Array;
}

export function confChange(changes: ConfChangeSingle[], transition = ConfChangeTransition.Auto, context = new Uint8Array(0)): ConfChangeV2 {
  return { transition, changes, context };
}

/** The empty change that leaves a joint configuration. */
export function leaveJointChange(): ConfChangeV2 {
  return confChange([]);
}

export function isLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0 && cc.context.length === 0;
}

/** Whether cc enters a joint configuration, and if so whether it is left automatically. */
export function enterJoint(cc: ConfChangeV2): { joint: boolean; autoLeave: boolean } {
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    return { joint: true, autoLeave: cc.transition !== ConfChangeTransition.JointExplicit };
  }
  return { joint: false, autoLeave: false };
}

/** Entry payload encoding. JSON keeps it readable in WAL dumps; ConfChanges are rare and small. */
export function encodeConfChange(cc: ConfChangeV2): Uint8Array {
  const json = JSON.stringify({ t: cc.transition, c: cc.changes.map((s) => [s.type, s.nodeId]), x: [...cc.context] });
  return new TextEncoder().encode(json);
}

export function decodeConfChange(data: Uint8Array): ConfChangeV2 {
  if (data.length === 0) return leaveJointChange();
  const v = JSON.parse(new TextDecoder().decode(data)) as { t: number; c: [number, number][]; x: number[] };
  return {
    transition: v.t as ConfChangeTransition,
    changes: v.c.map(([type, nodeId]) => ({ type: type as ConfChangeType, nodeId })),
    context: new Uint8Array(v.x),
  };
}

export class ConfChangeError extends Error {
  constructor(why: string) {
    super(`raft: invalid configuration change: ${why}`);
    this.name = 'ConfChangeError';
  }
}

/** New tracker state computed from the current one; the caller switches to it atomically. */
export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
}

export class Changer {
  constructor(
    private readonly tracker: ProgressTracker,
    private readonly lastIndex: number,
  ) {}

  enterJoint(autoLeave: boolean, ccs: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.outgoing.size > 0) throw new ConfChangeError('configuration is already joint');
    if (config.incoming.size === 0) throw new ConfChangeError("can't make a zero-voter configuration joint");
    config.outgoing = new Set(config.incoming);
    this.apply(config, progress, ccs);
    config.autoLeave = autoLeave;
    return checkAndReturn(config, progress);
  }

  leaveJoint(): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.outgoing.size === 0) throw new ConfChangeError("can't leave a non-joint configuration");
    for (const id of config.learnersNext) {
      config.learners.add(id);
      progress.get(id)!.isLearner = true;
    }
    config.learnersNext = new Set();
    for (const id of config.outgoing) {
      if (!config.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.outgoing = new Set();
    config.autoLeave = false;
    return checkAndReturn(config, progress);
  }

  /** At most one voter added or removed, outside joint consensus. */
  simple(ccs: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.outgoing.size > 0) throw new ConfChangeError('cannot apply a simple change in a joint configuration');
    const before = new Set(config.incoming);
    this.apply(config, progress, ccs);
    let diff = 0;
    for (const id of before) if (!config.incoming.has(id)) diff++;
    for (const id of config.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw new ConfChangeError('more than one voter changed without entering joint configuration');
    return checkAndReturn(config, progress);
  }

  private apply(config: TrackerConfig, progress: Map<NodeId, Progress>, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      if (cc.nodeId === 0) continue; // etcd's convention: a no-op change
      switch (cc.type) {
        case ConfChangeType.AddNode:
          this.makeVoter(config, progress, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(config, progress, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          remove(config, progress, cc.nodeId);
          break;
        default:
          throw new ConfChangeError(`unknown change type ${String(cc.type)}`);
      }
    }
    if (config.incoming.size === 0) throw new ConfChangeError('removed all voters');
  }

  private makeVoter(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) {
      this.initProgress(config, progress, id, false);
      return;
    }
    pr.isLearner = false;
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.incoming.add(id);
  }

  private makeLearner(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) {
      this.initProgress(config, progress, id, true);
      return;
    }
    if (pr.isLearner) return;
    remove(config, progress, id);
    progress.set(id, pr); // keep the progress
    // Still a voter of the outgoing half: it becomes a learner when the joint config is left.
    if (config.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      config.learners.add(id);
    }
  }

  private initProgress(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId, isLearner: boolean): void {
    if (isLearner) config.learners.add(id);
    else config.incoming.add(id);
    // Probe from our last index; mark active so check-quorum does not fire before it answers.
    progress.set(id, new Progress(Math.max(this.lastIndex, 1), this.tracker.maxInflight, isLearner, true));
  }

  private checkAndCopy(): ChangeResult {
    const config = cloneTrackerConfig(this.tracker.config);
    const progress = new Map<NodeId, Progress>();
    for (const [id, pr] of this.tracker.progress) {
      // Progress objects are shared on purpose except for the learner flag we may flip.
      const copy = Object.assign(Object.create(Object.getPrototypeOf(pr) as object) as Progress, pr);
      progress.set(id, copy);
    }
    checkInvariants(config, progress);
    return { config, progress };
  }
}

function remove(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
  if (!progress.has(id)) return;
  config.incoming.delete(id);
  config.learners.delete(id);
  config.learnersNext.delete(id);
  // Still a voter in the outgoing half: keep tracking it until the joint config is left.
  if (!config.outgoing.has(id)) progress.delete(id);
}

function checkInvariants(config: TrackerConfig, progress: Map<NodeId, Progress>): void {
  for (const ids of [config.incoming, config.outgoing, config.learners, config.learnersNext]) {
    for (const id of ids) if (!progress.has(id)) throw new ConfChangeError(`no progress for ${id}`);
  }
  for (const id of config.learnersNext) {
    if (!config.outgoing.has(id)) throw new ConfChangeError(`${id} is in learnersNext but not an outgoing voter`);
    if (progress.get(id)!.isLearner) throw new ConfChangeError(`${id} is in learnersNext but already a learner`);
  }
  for (const id of config.learners) {
    if (config.outgoing.has(id) || config.incoming.has(id)) throw new ConfChangeError(`${id} is both learner and voter`);
    if (!progress.get(id)!.isLearner) throw new ConfChangeError(`${id} is a learner but its progress says voter`);
  }
  if (config.outgoing.size === 0 && config.autoLeave) throw new ConfChangeError('autoLeave set outside a joint configuration');
}

function checkAndReturn(config: TrackerConfig, progress: Map<NodeId, Progress>): ChangeResult {
  checkInvariants(config, progress);
  return { config, progress };
}

/** Build the tracker state a ConfState describes (at startup or from a snapshot). */
export function restoreConfState(cs: ConfState, maxInflight: number, lastIndex: number): ChangeResult {
  const config = emptyTrackerConfig();
  const progress = new Map<NodeId, Progress>();
  const add = (id: NodeId, learner: boolean): void => {
    if (!progress.has(id)) progress.set(id, new Progress(Math.max(lastIndex, 1), maxInflight, learner, true));
  };
  for (const id of cs.voters) {
    config.incoming.add(id);
    add(id, false);
  }
  for (const id of cs.votersOutgoing) {
    config.outgoing.add(id);
    add(id, false);
  }
  for (const id of cs.learners) {
    config.learners.add(id);
    add(id, true);
  }
  for (const id of cs.learnersNext) config.learnersNext.add(id);
  config.autoLeave = cs.autoLeave;
  checkInvariants(config, progress);
  return { config, progress };
}
