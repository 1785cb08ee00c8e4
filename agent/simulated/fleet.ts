// Many simulated nodes in one process, each with its own identity (certificate, TLS connection,
// session, reporter). Nodes are brought up a bounded number at a time, each counted as up once its
// first session is open, so thousands of TLS handshakes do not all land on the managers at once.
// A SlotWatch sees every task state on every node: it can tell whether two nodes ever ran a copy
// of the same replicated slot at the same moment.
import type { Task, TaskState } from '../../proto/gen/objects.js';
import type { NodeCertificates } from '../credentials.js';
import { SimulatedAgent, type SimulatedAgentOptions } from './agent.js';
import type { TaskObserver } from './worker.js';

export interface FleetNode {
  nodeId: string;
  certs: NodeCertificates;
  hostname?: string;
}

export interface SimulatedFleetOptions {
  managers: string[];
  /** Nodes connecting at once. Default 64. */
  concurrency?: number;
  /** How long one node may take to open its first session. Default 60 s. */
  readyTimeoutMs?: number;
  /** Options every node shares. */
  agent?: Omit<SimulatedAgentOptions, 'nodeId' | 'certs' | 'managers' | 'hostname' | 'observer'>;
}

/** Replicated tasks by slot, global ones by node: at most one copy of each should ever run. */
export function slotOf(task: Pick<Task, 'serviceId' | 'slot' | 'nodeId'>): string {
  return task.slot ? `${task.serviceId}/${task.slot}` : `${task.serviceId}/node:${task.nodeId}`;
}

export interface SlotOverlap {
  slot: string;
  /** node/task of every copy running at that moment. */
  copies: string[];
  at: number;
}

/** Follows the tasks that run (RUNNING on a node that is alive) across every node of a fleet. */
export class SlotWatch implements TaskObserver {
  private readonly running = new Map<string, Map<string, string>>(); // slot → task id → node
  private runningTotal = 0;
  /** Moments when a slot ran on more than one node; the first 100 are kept. */
  readonly overlaps: SlotOverlap[] = [];
  maxCopies = 0;

  state(nodeId: string, task: Task, state: TaskState): void {
    if (state === 'RUNNING') this.add(nodeId, task);
    else this.remove(task);
  }

  gone(_nodeId: string, task: Task): void {
    this.remove(task);
  }

  /** Tasks running on the fleet now. */
  get total(): number {
    return this.runningTotal;
  }

  /** Copies of a slot running now. */
  copies(slot: string): number {
    return this.running.get(slot)?.size ?? 0;
  }

  private add(nodeId: string, task: Task): void {
    const slot = slotOf(task);
    let copies = this.running.get(slot);
    if (!copies) this.running.set(slot, (copies = new Map()));
    if (copies.has(task.id)) return;
    copies.set(task.id, nodeId);
    this.runningTotal++;
    this.maxCopies = Math.max(this.maxCopies, copies.size);
    if (copies.size > 1 && this.overlaps.length < 100) {
      this.overlaps.push({ slot, copies: [...copies].map(([id, node]) => `${node}/${id}`), at: Date.now() });
    }
  }

  private remove(task: Task): void {
    const slot = slotOf(task);
    const copies = this.running.get(slot);
    if (!copies?.delete(task.id)) return;
    this.runningTotal--;
    if (copies.size === 0) this.running.delete(slot);
  }
}

export class SimulatedFleet {
  readonly slots = new SlotWatch();
  private readonly agents = new Map<string, SimulatedAgent>();

  constructor(private readonly options: SimulatedFleetOptions) {
    if (options.managers.length === 0) throw new Error('a simulated fleet needs at least one manager address');
  }

  /** Starts the nodes, `concurrency` at a time; resolves once every one has a session open. */
  async add(nodes: FleetNode[]): Promise<void> {
    const concurrency = Math.max(1, this.options.concurrency ?? 64);
    const timeoutMs = this.options.readyTimeoutMs ?? 60_000;
    let next = 0;
    const bringUp = async (): Promise<void> => {
      while (next < nodes.length) {
        const node = nodes[next++]!;
        if (this.agents.has(node.nodeId)) throw new Error(`simulated node ${node.nodeId} is already in the fleet`);
        const agent = new SimulatedAgent({
          ...this.options.agent,
          nodeId: node.nodeId,
          certs: node.certs,
          hostname: node.hostname,
          managers: this.options.managers,
          observer: this.slots,
        });
        this.agents.set(node.nodeId, agent);
        agent.start();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`simulated node ${node.nodeId} opened no session within ${timeoutMs} ms (managers ${this.options.managers.join(', ')})`)),
            timeoutMs,
          );
        });
        try {
          await Promise.race([agent.ready(), timedOut]);
        } finally {
          clearTimeout(timer);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, nodes.length) }, bringUp));
  }

  get size(): number {
    return this.agents.size;
  }

  get(nodeId: string): SimulatedAgent {
    const agent = this.agents.get(nodeId);
    if (!agent) throw new Error(`no simulated node ${nodeId} in the fleet`);
    return agent;
  }

  nodes(): SimulatedAgent[] {
    return [...this.agents.values()];
  }

  /** The node dies (see SimulatedAgent.kill): the managers must notice from its missing heartbeats. */
  kill(nodeId: string): Promise<void> {
    return this.get(nodeId).kill();
  }

  /** Stops every node that is still up, `concurrency` at a time. */
  async stop(): Promise<void> {
    const agents = this.nodes();
    const concurrency = Math.max(1, this.options.concurrency ?? 64);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, agents.length) }, async () => {
        while (next < agents.length) await agents[next++]!.stop(0);
      }),
    );
  }
}
