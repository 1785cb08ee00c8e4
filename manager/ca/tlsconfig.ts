// TLS credentials for a manager's cluster port. The port must accept a joining node that has no
// certificate yet (it calls only the CA service) while still asking every other client for one:
// grpc-js's plain createSsl can only require a client certificate or not ask for one, so the
// port uses a certificate provider with requireClientCertificate=false (ask, don't require) and
// the authz interceptor decides per method. The provider also lets a renewed node certificate
// take effect without restarting the server.
import * as grpc from '@grpc/grpc-js';

type CaListener = (u: { caCertificate: Buffer } | null) => void;
type IdListener = (u: { certificate: Buffer; privateKey: Buffer } | null) => void;

export class MutableCertificates implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly idListeners = new Set<IdListener>();

  constructor(private ca: string, private cert: string, private key: string) {}

  /** Swap in a renewed certificate (or a rotated CA); connections made afterwards use it. */
  update(next: { ca?: string; cert?: string; key?: string }): void {
    if (next.ca) this.ca = next.ca;
    if (next.cert) this.cert = next.cert;
    if (next.key) this.key = next.key;
    for (const l of this.caListeners) l({ caCertificate: Buffer.from(this.ca) });
    for (const l of this.idListeners) l({ certificate: Buffer.from(this.cert), privateKey: Buffer.from(this.key) });
  }

  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    // grpc-js registers its watcher only after adding the listener: deliver on the next turn.
    setImmediate(() => this.caListeners.has(l) && l({ caCertificate: Buffer.from(this.ca) }));
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: IdListener): void {
    this.idListeners.add(l);
    setImmediate(() => this.idListeners.has(l) && l({ certificate: Buffer.from(this.cert), privateKey: Buffer.from(this.key) }));
  }
  removeIdentityCertificateListener(l: IdListener): void {
    this.idListeners.delete(l);
  }
}

/** Server credentials that ask every client for a certificate but let the authz layer decide. */
export function clusterServerCredentials(certs: MutableCertificates): grpc.ServerCredentials {
  return grpc.experimental.createCertificateProviderServerCredentials(certs, certs, false);
}

/** A node's credentials for dialing managers: verify them against the cluster CA. */
export function clusterChannelCredentials(ca: string, cert: string, key: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(ca), Buffer.from(key), Buffer.from(cert));
}

/** Managers' certificates name "shoal-manager" (not their addresses, which change). */
export const MANAGER_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': 'shoal-manager' };
