// Raft messages between managers over gRPC: RaftTransport, and the binary wire encoding.
export { RaftTransport, type RaftTransportOptions, type PeerStats } from './transport.js';
export { encodeMessages, decodeMessages } from './wire.js';
