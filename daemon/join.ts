// The joining node's side of `swarm join`: trust the cluster only after checking it, then get a
// certificate. The first call cannot verify the manager (the node does not have the CA yet), so
// it only fetches the root certificate and compares its digest with the one in the join token;
// from then on every connection verifies the manager against that CA.
import * as grpc from '@grpc/grpc-js';
import { CAClient, type GetRootCAResponse, type IssueNodeCertificateRequest, type IssueNodeCertificateResponse } from '../proto/gen/ca.js';
import { parseJoinToken } from '../manager/ca/token.js';
import { certificateDigest, newNodeKeyAndCsr } from '../manager/ca/ca.js';
import { MANAGER_CHANNEL_OPTIONS } from '../manager/ca/tlsconfig.js';

export class JoinError extends Error {
  override name = 'JoinError';
  readonly userError = true;
}

function unary<Req, Res>(fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => unknown, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err || !res ? reject(err ?? new Error('empty response')) : resolve(res))),
  );
}

/** Fetches the manager's root CA and checks it against the token's digest. */
export async function fetchTrustedRootCA(addr: string, token: string, timeoutMs = 10_000): Promise<string> {
  const { caDigest } = parseJoinToken(token);
  const insecure = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const client = new CAClient(addr, insecure, MANAGER_CHANNEL_OPTIONS);
  try {
    const res = await unary<object, GetRootCAResponse>(client.getRootCA.bind(client), {}, timeoutMs).catch((e: Error) => {
      throw new JoinError(`cannot reach a manager at ${addr}: ${e.message}`);
    });
    if (!certificateDigest(res.caCertPem).equals(caDigest)) {
      throw new JoinError(`the manager at ${addr} does not belong to the cluster of this join token (CA digest mismatch): refusing to trust it`);
    }
    return res.caCertPem;
  } finally {
    client.close();
  }
}

export interface JoinResult extends IssueNodeCertificateResponse {
  keyPem: string;
}

/** Joins: returns the node's key, certificate, role and the managers to talk to. */
export async function requestNodeCertificate(addr: string, token: string, node: { hostname: string; advertiseAddr: string }, timeoutMs = 10_000): Promise<JoinResult> {
  const caPem = await fetchTrustedRootCA(addr, token, timeoutMs);
  const { keyPem, csrPem } = newNodeKeyAndCsr('joining');
  const client = new CAClient(addr, grpc.credentials.createSsl(Buffer.from(caPem)), MANAGER_CHANNEL_OPTIONS);
  try {
    const res = await unary<IssueNodeCertificateRequest, IssueNodeCertificateResponse>(client.issueNodeCertificate.bind(client), { csrPem, token, advertiseAddr: node.advertiseAddr, hostname: node.hostname }, timeoutMs).catch((e: grpc.ServiceError) => {
      throw new JoinError(e.details || e.message);
    });
    return { ...res, keyPem };
  } finally {
    client.close();
  }
}
