// The Control API's cluster objects: what `shoal service|network|node|config` ask of a manager, checked
// the way swarmkit's controlapi checks it and written to the store in one transaction each.
//
// Every call takes a ControlContext (the manager's store, plus Raft membership for node calls).
// Reads work on any manager; writes need a store that can propose (the leader). Errors are
// ControlErrors carrying their gRPC status code (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
// FAILED_PRECONDITION); the daemon passes code and message on unchanged.
export { ControlError, asControlError } from './errors.js';
export type { ControlContext, RaftMembership } from './context.js';
export { resolve, lookup } from './resolve.js';
export { createService, getService, updateService, removeService, listServices, serviceWarnings } from './services.js';
export { serviceStatus } from './status.js';
export { listTasks } from './tasks.js';
export { createNetwork, getNetwork, listNetworks, removeNetwork } from './networks.js';
export { createConfig, getConfig, listConfigs, removeConfig, MAX_CONFIG_SIZE } from './configs.js';
export { getNode, listNodes, updateNode, removeNode } from './nodes.js';
export { validateServiceSpec, normalizeServiceSpec } from './servicespec.js';
