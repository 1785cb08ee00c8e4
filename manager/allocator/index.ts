// The allocator's public face.
//
// The manager runs it on the leader only:
//   const allocator = new Allocator(store, { logger });   // pools from the cluster object
//   await allocator.start();   // on becoming leader: rebuilds from the store, allocates the backlog
//   allocator.stop();          // on losing leadership
// and creates the routing mesh's network once, when the cluster is created:
//   store.update((tx) => tx.create('networks', defaultIngressNetwork(newId())))
//
// The control API checks before it writes (each throws an AllocatorError whose `code` maps to a
// gRPC status: InvalidArgument, AlreadyExists, ResourceExhausted, FailedPrecondition):
//   CreateNetwork:               validateNetworkSpec(spec, store.all('networks'))
//   CreateService/UpdateService: validateServiceEndpoint(spec, serviceIdOrEmpty, store.all('services'))
//   RemoveNetwork:               checkNetworkRemovable(store, networkId)
//   init (--default-addr-pool):  parseAddressPools(pools, maskLength)
export { Allocator, PENDING_MESSAGE, type AllocatorOptions } from './allocator.js';
export { validateNetworkSpec, validateServiceEndpoint, checkNetworkRemovable, parseAddressPools } from './checks.js';
export { AllocatorError, type AllocatorErrorCode } from './errors.js';
export { DEFAULT_ADDRESS_POOL, DEFAULT_SUBNET_SIZE } from './ipam/pool.js';
export { macFromIp } from './ipam/mac.js';
export { VXLAN_ID_OPTION, VNI_MIN, VNI_MAX } from './vni.js';
export { DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX } from './ports.js';
export { DRIVER_SCOPE, DEFAULT_DRIVER, isNetworkAllocated, defaultIngressNetwork } from './network.js';
