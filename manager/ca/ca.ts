// The cluster's root CA and the identities it issues. `swarm init` creates the root; every node
// (managers included) gets a certificate whose subject says who it is: CN = node ID,
// OU = role, O = cluster ID — the same layout as Docker Swarm, so the TLS layer alone can tell a
// manager from a worker and one cluster from another.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { createCertificate, createCsr, fromPem, parseCsr } from './x509.js';

export type NodeRole = 'manager' | 'worker';
export const ROLE_OU: Record<NodeRole, string> = { manager: 'shoal-manager', worker: 'shoal-worker' };

const DAY = 24 * 3600 * 1000;
/** Docker's defaults: a 20-year root, 90-day node certificates. */
export const ROOT_VALIDITY_MS = 20 * 365 * DAY;
export const NODE_VALIDITY_MS = 90 * DAY;

export interface KeyPair {
  keyPem: string;
  certPem: string;
}

export function newKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

export function keyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** An identifier in Docker's style: 25 lowercase base-36 characters from 128 random bits. */
export function newId(): string {
  return BigInt('0x' + randomBytes(16).toString('hex')).toString(36).padStart(25, '0');
}

/** SHA-256 of the certificate's DER bytes: what a join token carries. */
export function certificateDigest(certPem: string): Buffer {
  return createHash('sha256').update(fromPem(certPem, 'CERTIFICATE')).digest();
}

export interface NodeIdentity {
  nodeId: string;
  role: NodeRole;
  clusterId: string;
  notAfter: Date;
}

/** Reads who a certificate names. Throws if it is not a shoal node certificate. */
export function identityOf(certPem: string | X509Certificate): NodeIdentity {
  const cert = typeof certPem === 'string' ? new X509Certificate(certPem) : certPem;
  const fields = new Map<string, string>();
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const role = (Object.keys(ROLE_OU) as NodeRole[]).find((r) => ROLE_OU[r] === fields.get('OU'));
  const nodeId = fields.get('CN');
  const clusterId = fields.get('O');
  if (!role || !nodeId || !clusterId) throw new Error(`not a shoal node certificate: subject ${JSON.stringify(cert.subject)}`);
  return { nodeId, role, clusterId, notAfter: new Date(cert.validTo) };
}

export class RootCA {
  private readonly key: KeyObject;
  readonly certPem: string;
  readonly clusterId: string;

  constructor(pair: KeyPair) {
    this.key = createPrivateKey(pair.keyPem);
    this.certPem = pair.certPem;
    const cert = new X509Certificate(pair.certPem);
    if (!cert.ca) throw new Error('the root certificate is not a CA');
    if (!cert.checkPrivateKey(this.key)) throw new Error('the root key does not match the root certificate');
    const org = /^O=(.*)$/m.exec(cert.subject);
    this.clusterId = org?.[1] ?? '';
  }

  static create(clusterId: string = newId(), now = new Date()): RootCA {
    const key = newKey();
    const subject = { commonName: 'shoal-root-ca', organization: clusterId };
    const certPem = createCertificate({
      subject,
      issuer: subject,
      subjectKey: key,
      issuerKey: key,
      issuerPublicKey: createPublicKey(key),
      notBefore: new Date(now.getTime() - 60_000), // tolerate small clock skew between machines
      notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
      isCA: true,
    });
    return new RootCA({ keyPem: keyToPem(key), certPem });
  }

  get keyPem(): string {
    return keyToPem(this.key);
  }

  digest(): Buffer {
    return certificateDigest(this.certPem);
  }

  /**
   * Signs a node certificate for the key in `csrPem`. The subject comes from the CA's decision
   * (node ID, role), never from the request.
   */
  issue(csrPem: string, node: { nodeId: string; role: NodeRole; dnsNames?: string[]; ipAddresses?: string[] }, now = new Date(), validityMs = NODE_VALIDITY_MS): string {
    const { publicKey } = parseCsr(csrPem);
    return createCertificate({
      subject: { commonName: node.nodeId, organizationalUnit: ROLE_OU[node.role], organization: this.clusterId },
      issuer: { commonName: 'shoal-root-ca', organization: this.clusterId },
      subjectKey: publicKey,
      issuerKey: this.key,
      issuerPublicKey: createPublicKey(this.key),
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + validityMs),
      dnsNames: ['shoal-' + node.role, node.nodeId, ...(node.dnsNames ?? [])],
      ipAddresses: node.ipAddresses ?? [],
    });
  }

  /** True when `certPem` was signed by this CA (the TLS layer checks dates and chains too). */
  issued(certPem: string): boolean {
    try {
      return new X509Certificate(certPem).verify(createPublicKey(this.key));
    } catch {
      return false;
    }
  }
}

/** A node's side of joining: a fresh key and the request to send with the join token. */
export function newNodeKeyAndCsr(nodeId: string): { keyPem: string; csrPem: string } {
  const key = newKey();
  return { keyPem: keyToPem(key), csrPem: createCsr(key, nodeId) };
}
