// Node certificates renew themselves before they expire. Like swarmkit, a node renews at a random
// moment between 50% and 80% of its certificate's lifetime, so a cluster whose nodes all joined
// together does not renew all at once. Renewal is a CSR sent over mutual TLS with the current
// certificate: the CA reads the node's identity from it and the role from the store, so a
// promotion or demotion reaches the node the same way (renewNow when the store's role differs).
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CAClient, type IssueNodeCertificateRequest, type IssueNodeCertificateResponse } from '../proto/gen/ca.js';
import { identityOf, newNodeKeyAndCsr } from '../manager/ca/ca.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../manager/ca/tlsconfig.js';

export interface NodeCerts {
  ca: string;
  cert: string;
  key: string;
}

export interface RenewedCerts extends NodeCerts {
  role: 'manager' | 'worker';
}

/** When to renew `certPem`: a point between 50% and 80% of its lifetime, picked by `random` ∈ [0,1). */
export function renewalTime(certPem: string, random: number): Date {
  const c = new X509Certificate(certPem);
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  return new Date(from + (to - from) * (0.5 + 0.3 * random));
}

/** Asks the managers in turn (a follower refuses: only the leader writes the new fingerprint). */
export async function renewCertificate(managers: string[], current: NodeCerts, advertiseAddr: string, timeoutMs = 10_000): Promise<RenewedCerts> {
  const { nodeId } = identityOf(current.cert);
  const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
  const errors: string[] = [];
  for (const addr of managers) {
    const client = new CAClient(addr, clusterChannelCredentials(current.ca, current.cert, current.key), MANAGER_CHANNEL_OPTIONS);
    try {
      const res = await new Promise<IssueNodeCertificateResponse>((resolve, reject) =>
        client.issueNodeCertificate(
          { csrPem, token: '', advertiseAddr, hostname: '' } satisfies IssueNodeCertificateRequest,
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (e, r) => (e || !r ? reject(e ?? new Error('empty response')) : resolve(r)),
        ),
      );
      return { ca: res.caCertPem, cert: res.certificatePem, key: keyPem, role: res.role === 'MANAGER' ? 'manager' : 'worker' };
    } catch (e) {
      errors.push(`${addr}: ${(e as grpc.ServiceError).details || (e as Error).message}`);
    } finally {
      client.close();
    }
  }
  throw new Error(`could not renew the node certificate (${errors.join('; ')})`);
}

export interface RenewerOptions {
  managers: () => string[];
  current: () => NodeCerts;
  advertiseAddr: string;
  /** Install the new certificate (save it, hand it to the manager and agent). */
  onRenewed: (certs: RenewedCerts) => Promise<void>;
  log: (message: string, fields: Record<string, unknown>) => void;
  random?: () => number;
  /** After a failed attempt. Default 30 s. */
  retryMs?: number;
}

/** Keeps one renewal scheduled; renewNow() renews at once (a role change, an operator's request). */
export class CertificateRenewer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: RenewerOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(renewalTime(this.opts.current().cert, (this.opts.random ?? Math.random)()).getTime() - Date.now());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Renews now (joining one already under way); rejects if no manager would renew. */
  renewNow(): Promise<void> {
    this.running ??= this.renew().finally(() => (this.running = null));
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    // setTimeout's limit is ~24.8 days: longer waits are taken in steps.
    const step = Math.min(Math.max(delayMs, 0), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      if (delayMs > step) return this.schedule(delayMs - step);
      this.renewNow().catch((e: unknown) => {
        this.opts.log('certificate renewal failed; will retry', { error: (e as Error).message });
        this.schedule(this.opts.retryMs ?? 30_000);
      });
    }, step);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    const next = await renewCertificate(this.opts.managers(), this.opts.current(), this.opts.advertiseAddr);
    await this.opts.onRenewed(next);
    this.opts.log('node certificate renewed', { notAfter: new X509Certificate(next.cert).validTo, role: next.role });
    if (!this.stopped) this.schedule(renewalTime(next.cert, (this.opts.random ?? Math.random)()).getTime() - Date.now());
  }
}
