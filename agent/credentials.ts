// How a node dials managers: mutual TLS with its own certificate, verifying the manager against
// the cluster CA. Managers' certificates name "shoal-manager" rather than their addresses.
import * as grpc from '@grpc/grpc-js';

export interface NodeCertificates {
  ca: string;
  cert: string;
  key: string;
}

export function clusterCredentials(c: NodeCertificates): { credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  return {
    credentials: grpc.credentials.createSsl(Buffer.from(c.ca), Buffer.from(c.key), Buffer.from(c.cert)),
    channelOptions: { 'grpc.ssl_target_name_override': 'shoal-manager' },
  };
}
