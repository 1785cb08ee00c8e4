// Mutual TLS for tests that run a gRPC server of their own: node certificates from a test CA, and
// a server bound on loopback with a manager's certificate, asking every client for one.
import * as grpc from '@grpc/grpc-js';
import { newNodeKeyAndCsr, type RootCA } from '../../manager/ca/ca.js';

export function nodeCreds(ca: RootCA, nodeId: string, role: 'manager' | 'worker'): { keyPem: string; certPem: string } {
  const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
  return { keyPem, certPem: ca.issue(csrPem, { nodeId, role }) };
}

/** Binds `server` on 127.0.0.1 with a certificate for manager1; resolves to the port. */
export function bindMutualTls(server: grpc.Server, ca: RootCA): Promise<number> {
  const m = nodeCreds(ca, 'manager1', 'manager');
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(m.keyPem), cert_chain: Buffer.from(m.certPem) }], true);
  return new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
}
