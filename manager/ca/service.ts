// The CA service every manager serves on its cluster port. A joining node has no certificate
// yet: it proves itself with a join token, whose secret decides its role; the manager records
// the new Node in the store and signs the node's key. A node that has a certificate renews it
// with a new request, and gets the role the cluster now wants for it (promote/demote).
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { CAService, type CAHandlers, type IssueNodeCertificateRequest, type IssueNodeCertificateResponse } from '../../proto/gen/ca.js';
import { Node, NodeSpec, NodeDescription, NodeStatus, Annotations, type NodeRole as ProtoRole } from '../../proto/gen/objects.js';
import type { MemoryStore } from '../store/memory.js';
import { blank } from '../store/blank.js';
import { RootCA, newId, type NodeRole } from './ca.js';
import { caPublicKey, verifiedPeer } from './authz.js';
import { parseJoinToken, secretMatches, JoinTokenError } from './token.js';
import { CsrError } from './x509.js';

export interface CAServiceDeps {
  store: MemoryStore;
  rootCA: () => RootCA;
  /** Addresses of the managers, handed to a node that joins. */
  managerAddrs: () => string[];
  /** Only the leader may write the store; others answer UNAVAILABLE so the node tries another. */
  canWrite: () => boolean;
}

class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const toProtoRole = (r: NodeRole): ProtoRole => (r === 'manager' ? 'MANAGER' : 'WORKER');
const fromProtoRole = (r: ProtoRole): NodeRole => (r === 'MANAGER' ? 'manager' : 'worker');

/** Which role a presented join token grants, or an error naming what is wrong with it. */
export function roleForToken(token: string, deps: Pick<CAServiceDeps, 'store' | 'rootCA'>): NodeRole {
  let parsed;
  try {
    parsed = parseJoinToken(token);
  } catch (e) {
    throw new CallError(grpc.status.INVALID_ARGUMENT, (e as JoinTokenError).message);
  }
  if (!parsed.caDigest.equals(deps.rootCA().digest())) {
    throw new CallError(grpc.status.PERMISSION_DENIED, 'the join token is for a different cluster (its CA digest does not match this cluster\'s CA)');
  }
  const cluster = deps.store.all('clusters')[0];
  const tokens = cluster?.joinTokens;
  if (tokens && secretMatches(parsed.secret, tokens.manager)) return 'manager';
  if (tokens && secretMatches(parsed.secret, tokens.worker)) return 'worker';
  throw new CallError(grpc.status.PERMISSION_DENIED, 'invalid join token: it was rotated or never valid; get the current one with `shoal swarm join-token`');
}

async function issue(call: grpc.ServerUnaryCall<IssueNodeCertificateRequest, IssueNodeCertificateResponse>, deps: CAServiceDeps): Promise<IssueNodeCertificateResponse> {
  const req = call.request;
  const ca = deps.rootCA();
  if (!deps.canWrite()) throw new CallError(grpc.status.UNAVAILABLE, 'this manager is not the leader; try another manager');
  const peer = verifiedPeer(call.getAuthContext(), caPublicKey(ca.certPem));
  let nodeId: string;
  let role: NodeRole;
  const ipAddresses = req.advertiseAddr ? [req.advertiseAddr.replace(/:\d+$/, '')].filter((h) => /^\d+\.\d+\.\d+\.\d+$/.test(h)) : [];
  if (peer) {
    // Renewal: the certificate says who this is; the store says what role it should now have.
    const node = deps.store.get('nodes', peer.identity.nodeId);
    if (!node) throw new CallError(grpc.status.PERMISSION_DENIED, `node ${peer.identity.nodeId} was removed from the cluster`);
    // Only the certificate on record renews: one replaced by an earlier renewal is dead.
    if (node.certificateFingerprint && node.certificateFingerprint !== peer.fingerprint256) {
      throw new CallError(grpc.status.PERMISSION_DENIED, `node ${node.id}: this certificate was replaced by a renewal and is no longer valid`);
    }
    nodeId = node.id;
    role = fromProtoRole(node.spec?.desiredRole ?? 'WORKER');
  } else {
    role = roleForToken(req.token, deps);
    nodeId = newId();
  }
  let certPem: string;
  try {
    certPem = ca.issue(req.csrPem, { nodeId, role, ipAddresses });
  } catch (e) {
    if (e instanceof CsrError) throw new CallError(grpc.status.INVALID_ARGUMENT, e.message);
    throw e;
  }
  const fingerprint = new X509Certificate(certPem).fingerprint256;
  await deps.store.update((tx) => {
    const existing = tx.get('nodes', nodeId);
    if (existing) {
      tx.update('nodes', { ...existing, role: toProtoRole(role), certificateFingerprint: fingerprint });
      return;
    }
    tx.create(
      'nodes',
      blank(Node, {
        id: nodeId,
        role: toProtoRole(role),
        certificateFingerprint: fingerprint,
        spec: blank(NodeSpec, { annotations: blank(Annotations), desiredRole: toProtoRole(role), availability: 'ACTIVE' }),
        description: blank(NodeDescription, { hostname: req.hostname }),
        status: blank(NodeStatus, { state: 'UNKNOWN', addr: req.advertiseAddr }),
      }),
    );
  });
  return { nodeId, certificatePem: certPem, caCertPem: ca.certPem, role: toProtoRole(role), managerAddrs: deps.managerAddrs() };
}

export function caHandlers(deps: CAServiceDeps): CAHandlers {
  return {
    getRootCA: (_call, cb) => cb(null, { caCertPem: deps.rootCA().certPem }),
    issueNodeCertificate: (call, cb) => {
      issue(call, deps).then(
        (res) => cb(null, res),
        (e: unknown) => cb({ code: e instanceof CallError ? e.code : grpc.status.INTERNAL, details: (e as Error).message }),
      );
    },
  };
}

export function registerCAService(server: grpc.Server, deps: CAServiceDeps): void {
  server.addService(CAService, caHandlers(deps));
}
