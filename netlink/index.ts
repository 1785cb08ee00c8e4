// shoal's rtnetlink client. Knows nothing about tasks or services; imports nothing from shoal.
export { Netlink, type CreateLinkSpec, type OpenOptions, type RouteOptions } from './netlink.js';
export { NetlinkWatcher, type ChangeAction, type NetlinkWatcherEvents, type WatchGroup } from './watch.js';
export { NetlinkError } from './errors.js';
export type { Link, LinkRef, LinkSpec, MacvlanMode, VethSpec, BridgeSpec, VxlanSpec, MacvlanSpec, VlanSpec } from './links.js';
export { VXLAN_PORT } from './links.js';
export type { Address, AddressOptions } from './addresses.js';
export type { Route, RouteSpec } from './routes.js';
export type { Neighbour, FdbEntry, FdbSpec } from './neighbours.js';
export type { NetnsRef } from './netns.js';
export { netnsPath } from './netns.js';
export { AF_INET, AF_INET6, AF_BRIDGE, RT_TABLE_MAIN } from './constants.js';
