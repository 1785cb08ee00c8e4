// VIP load balancing inside a task's network namespace: a table `ip shoal-lb` whose nat output
// chain DNATs every connection to a service VIP to one of that service's task IPs, picked at
// random per connection (conntrack keeps the rest of the connection on that task; replies are
// un-DNATed on the way back). The table is replaced whole in one `nft -f` transaction, so a
// connection never sees half an update. Only tasks' own traffic passes here: one table per task.
import { spawn } from 'node:child_process';
import type { VipBackends } from './records.js';

export const LB_TABLE = 'shoal-lb';

export interface LoadBalancer {
  /** Makes the namespace's VIP table say exactly `vips` (an empty list removes it). */
  apply(netnsPath: string, vips: readonly VipBackends[]): Promise<void>;
  /** Removes the table; a missing table or namespace is fine. */
  remove(netnsPath: string): Promise<void>;
}

/**
 * The `nft -f` script that replaces the table: declaring it first makes the delete safe when it
 * does not exist yet, and all three statements commit as one transaction.
 */
export function lbScript(vips: readonly VipBackends[]): string {
  const lines = [`table ip ${LB_TABLE}`, `delete table ip ${LB_TABLE}`];
  if (vips.length === 0) return lines.join('\n') + '\n';
  lines.push(`table ip ${LB_TABLE} {`, '\tchain output {', '\t\ttype nat hook output priority -100; policy accept;');
  for (const { vip, serviceName, backends } of vips) {
    if (backends.length === 0) continue;
    const target = backends.length === 1 ? backends[0] : `numgen random mod ${backends.length} map { ${backends.map((ip, i) => `${i} : ${ip}`).join(', ')} }`;
    lines.push(`\t\tip daddr ${vip} dnat to ${target} comment ${JSON.stringify(commentText(serviceName))}`);
  }
  lines.push('\t}', '}');
  return lines.join('\n') + '\n';
}

/** nft comments are quoted strings: keep to characters that need no escaping. */
function commentText(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 120) || 'service';
}

export interface NftLoadBalancerOptions {
  /** Default `nsenter`; the command enters the namespace with `--net=PATH`. */
  nsenterPath?: string;
  /** Default `nft`. */
  nftPath?: string;
}

export class NftLoadBalancer implements LoadBalancer {
  private readonly nsenter: string;
  private readonly nft: string;

  constructor(opts: NftLoadBalancerOptions = {}) {
    this.nsenter = opts.nsenterPath ?? 'nsenter';
    this.nft = opts.nftPath ?? 'nft';
  }

  apply(netnsPath: string, vips: readonly VipBackends[]): Promise<void> {
    return this.run(netnsPath, lbScript(vips));
  }

  async remove(netnsPath: string): Promise<void> {
    try {
      await this.run(netnsPath, lbScript([]));
    } catch (err) {
      // The namespace went first (the task is gone): nothing left to remove.
      if (!/No such file|cannot open|reassociate/i.test((err as Error).message)) throw err;
    }
  }

  private run(netnsPath: string, script: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.nsenter, [`--net=${netnsPath}`, this.nft, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (err) => reject(new Error(`cannot run ${this.nsenter} ${this.nft} for ${netnsPath}: ${err.message}`)));
      child.on('close', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`nft in ${netnsPath} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
      });
      child.stdin.on('error', () => {}); // a child that died early reports through 'close'
      child.stdin.end(script);
    });
  }
}
