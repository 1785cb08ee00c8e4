// Names of everything the drivers create, derived from ids so that an agent that restarted (or
// lost its state file) finds the same objects again. Link names must stay within 15 characters.

/** The host's gateway bridge for overlay tasks' outbound traffic (Docker's docker_gwbridge). */
export const GW_BRIDGE = 'shoal_gwbridge';
/** Host-side veth ends in the gateway bridge all start so; the bridge-family rule isolating them matches on it. */
export const GW_VETH_PREFIX = 'shgw';
/** The nftables table (in the ip and bridge families) holding every rule the drivers need. */
export const NFT_TABLE = 'shoal';
/** Overlay links carry VXLAN's 50 bytes of headers inside a 1500-byte underlay. */
export const OVERLAY_MTU = 1450;

/** Namespace and link names keep ids to their safe characters. */
function idPart(id: string, length: number): string {
  return id.replace(/[^A-Za-z0-9]/g, '').slice(0, length).toLowerCase();
}

export class Names {
  constructor(
    /** Every namespace name starts with it ("shoal-"): the task namespaces are NetnsNetworkAttacher's. */
    readonly prefix: string,
    private readonly nodeId: string,
  ) {}

  /** A task's namespace, `<prefix><first 12 of the container id>` like NetnsNetworkAttacher's. */
  taskNetns(containerId: string): string {
    return `${this.prefix}${containerId.slice(0, 12)}`;
  }

  /**
   * An overlay network's sandbox on this host. The node id is in it because /run/netns is shared by
   * every host namespace on one machine (the lab, the tests): two hosts must not meet there.
   */
  sandboxNetns(networkId: string): string {
    return `${this.prefix}ov-${idPart(this.nodeId, 12)}-${idPart(networkId, 12)}`;
  }

  /** The end of attachment `index`'s veth outside the task (in the host or the sandbox). */
  endpointLink(containerId: string, index: number): string {
    return `shv${containerId.slice(0, 10)}${index}`;
  }

  /** The host end of a task's veth into the gateway bridge. */
  gatewayLink(containerId: string): string {
    return `${GW_VETH_PREFIX}${containerId.slice(0, 10)}`;
  }

  /** A bridge network's Linux bridge in the host namespace. */
  static bridge(networkId: string): string {
    return `shl-${idPart(networkId, 11)}`;
  }

  /** The bridge of subnet `index` inside an overlay sandbox. */
  static sandboxBridge(index: number): string {
    return `br${index}`;
  }

  /** A VXLAN device: created in the host namespace under this name, then moved into the sandbox. */
  static vxlan(vni: number): string {
    return `vx-${vni.toString(16).padStart(6, '0')}`;
  }

  /** The task's interfaces: eth0, eth1… in attachment order. */
  static taskInterface(index: number): string {
    return `eth${index}`;
  }
}
