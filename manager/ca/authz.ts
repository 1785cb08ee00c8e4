// Who may call what on a manager's cluster port. Every RPC but the CA's (which a joining node
// calls before it has a certificate) needs a client certificate that this cluster's CA signed,
// for a node that still exists, with a role the method allows. The check runs as a gRPC server
// interceptor, before any handler sees the call, so no service can forget it.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context.js';
import { identityOf, type NodeIdentity, type NodeRole } from './ca.js';

type Policy = 'anyone' | NodeRole[];

const POLICIES: [prefix: string, policy: Policy][] = [
  ['/shoal.ca.CA/', 'anyone'],
  ['/shoal.health.Health/', 'anyone'],
  ['/shoal.dispatcher.Dispatcher/', ['manager', 'worker']],
  // The consul-style KV (manager/kv/service.ts): every node's agent keeps the peer table there.
  ['/shoal.kv.KV/', ['manager', 'worker']],
  // Logs (manager/logbroker): every node's agent listens for subscriptions and publishes lines;
  // SubscribeLogs on the cluster port is for managers forwarding their CLIs' calls.
  ['/shoal.logs.LogBroker/', ['manager', 'worker']],
  ['/shoal.logs.Logs/', ['manager']],
  ['/shoal.raft.Raft/', ['manager']],
  ['/shoal.membership.Membership/', ['manager']],
  ['/shoal.control.Control/', ['manager']],
];

export interface AuthzDeps {
  /** The cluster's root certificate (PEM). */
  caCertPem: () => string;
  /**
   * Whether the node named by a valid certificate may still call: false once it was removed, or
   * when its certificate was replaced (fingerprint differs from the one on record).
   */
  nodeAllowed: (identity: NodeIdentity, fingerprint256: string, path: string) => boolean;
  now?: () => number;
}

export interface Denial {
  code: grpc.status;
  message: string;
}

// Every RPC is authorized, and parsing an X.509 certificate and checking its signature costs about
// a millisecond: with thousands of nodes heartbeating, that alone kept a leader busy. A node shows
// the same certificate on every call, so what is learnt from it is kept, keyed by its SHA-256
// fingerprint, which TLS already computed (and the signature verdict by the CA key it was checked
// against). Bounded: cleared when full.
interface KnownCertificate {
  cert: X509Certificate;
  from: number;
  to: number;
  identity: { identity: NodeIdentity; fingerprint256: string } | null;
  verdicts: WeakMap<KeyObject, boolean>;
}
const CERT_CACHE_MAX = 20_000;
const knownCertificates = new Map<string, KnownCertificate>();

function peerCertificate(ctx: AuthContext | undefined): KnownCertificate | null {
  const peer = ctx?.sslPeerCertificate;
  const raw = peer?.raw;
  if (!raw || !raw.length) return null;
  const key = peer.fingerprint256 || raw.toString('base64');
  let known = knownCertificates.get(key);
  if (!known) {
    const cert = new X509Certificate(raw);
    let identity: KnownCertificate['identity'] = null;
    try {
      identity = { identity: identityOf(cert), fingerprint256: cert.fingerprint256 };
    } catch {
      // not one of ours: no identity
    }
    known = { cert, from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo), identity, verdicts: new WeakMap() };
    if (knownCertificates.size >= CERT_CACHE_MAX) knownCertificates.clear();
    knownCertificates.set(key, known);
  }
  return known;
}

const caKeys = new Map<string, KeyObject>();

/** The CA certificate's public key, parsed once per PEM. */
export function caPublicKey(caCertPem: string): KeyObject {
  let key = caKeys.get(caCertPem);
  if (!key) {
    if (caKeys.size > 16) caKeys.clear();
    key = createPublicKey(caCertPem);
    caKeys.set(caCertPem, key);
  }
  return key;
}

/** The verified identity of a call's peer, or null when it presented no acceptable certificate. */
export function verifiedPeer(ctx: AuthContext | undefined, caKey: KeyObject, now = Date.now()): { identity: NodeIdentity; fingerprint256: string } | null {
  const known = peerCertificate(ctx);
  if (!known) return null;
  let ok = known.verdicts.get(caKey);
  if (ok === undefined) {
    ok = known.cert.verify(caKey);
    known.verdicts.set(caKey, ok);
  }
  if (!ok || known.from > now || known.to < now) return null;
  return known.identity;
}

export function authorize(path: string, ctx: AuthContext | undefined, deps: AuthzDeps): Denial | null {
  const outcome = authorizeCall(path, ctx, deps);
  return 'code' in outcome ? outcome : null;
}

/** `authorize`, also naming the caller it let through (none for methods open to anyone). */
function authorizeCall(path: string, ctx: AuthContext | undefined, deps: AuthzDeps): Denial | { identity: NodeIdentity | null } {
  const policy = POLICIES.find(([prefix]) => path.startsWith(prefix))?.[1];
  if (!policy) return { code: grpc.status.UNIMPLEMENTED, message: `unknown method ${path}` };
  if (policy === 'anyone') return { identity: null };
  const caKey = caPublicKey(deps.caCertPem());
  const peer = verifiedPeer(ctx, caKey, deps.now?.() ?? Date.now());
  if (!peer) return { code: grpc.status.UNAUTHENTICATED, message: 'a valid certificate of this cluster is required' };
  if (!policy.includes(peer.identity.role)) {
    return { code: grpc.status.PERMISSION_DENIED, message: `node ${peer.identity.nodeId} is a ${peer.identity.role}: ${path} needs ${policy.join(' or ')}` };
  }
  if (!deps.nodeAllowed(peer.identity, peer.fingerprint256, path)) {
    return { code: grpc.status.PERMISSION_DENIED, message: `node ${peer.identity.nodeId} was removed from the cluster or its certificate was replaced` };
  }
  return { identity: peer.identity };
}

/**
 * Callers the interceptor let through, by the call's metadata object, which grpc-js hands on to
 * the handler: the handler learns who calls without reading the certificate again (asking TLS
 * for the peer certificate builds a new object each time: a good part of a heartbeat's cost).
 * Nothing a client sends can put an entry here.
 */
const verifiedCallers = new WeakMap<grpc.Metadata, NodeIdentity>();

/**
 * The call's TLS connection, found inside grpc-js's call object (its base call keeps the HTTP/2
 * stream; interceptors wrap it as `nextCall`). Undefined if grpc-js ever changes that shape: the
 * caller then asks for the certificate on every call, as before.
 */
function tlsSocketOf(call: unknown): TLSSocket | undefined {
  let c = call as { stream?: { session?: { socket?: unknown } }; nextCall?: unknown } | undefined;
  for (let depth = 0; c && depth < 8; depth++) {
    const socket = c.stream?.session?.socket;
    if (socket instanceof TLSSocket) return socket;
    c = c.nextCall as typeof c;
  }
  return undefined;
}

/**
 * Each connection's auth context, asked for once: TLS builds the peer certificate afresh on each
 * request for it (its fields, its raw bytes, its fingerprints), which cost the leader of a
 * 5,000-node cluster more CPU than anything else it did per heartbeat. Only what TLS says is
 * kept: the checks on it (signature, validity, node removed, role) still run on every call.
 */
const authContexts = new WeakMap<TLSSocket, AuthContext>();

function authContextOf(call: { getAuthContext(): AuthContext }): AuthContext {
  const socket = tlsSocketOf(call);
  if (!socket) return call.getAuthContext();
  let ctx = authContexts.get(socket);
  if (!ctx) {
    ctx = call.getAuthContext();
    if (ctx.sslPeerCertificate) authContexts.set(socket, ctx);
  }
  return ctx;
}

/** The interceptor that enforces `authorize` on every call of a server. */
export function authzInterceptor(deps: AuthzDeps): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const outcome = authorizeCall(method.path, authContextOf(call), deps);
            if ('code' in outcome) return call.sendStatus({ code: outcome.code, details: outcome.message, metadata: new grpc.Metadata() });
            if (outcome.identity) verifiedCallers.set(metadata, outcome.identity);
            nextMetadata(metadata);
          },
        }),
    });
}

/** For handlers: the identity of the caller, already checked by the interceptor. */
export function callerIdentity(call: { getAuthContext(): AuthContext; metadata?: grpc.Metadata }): NodeIdentity | null {
  const verified = call.metadata && verifiedCallers.get(call.metadata);
  if (verified) return verified;
  return peerCertificate(call.getAuthContext())?.identity?.identity ?? null;
}
