// gRPC metadata keys that are part of the wire contract but have no message of their own.

/** On a follower's refusal (UNAVAILABLE): the leader's address, where the caller should go next. */
export const LEADER_ADDR_METADATA = 'shoal-leader-addr';
