// VXLAN network identifiers for overlay networks, from Docker's range. Serial like the addresses:
// a removed network's VNI is not reused at once, so a node that still has the old VXLAN device
// cannot bridge the old network into the new one.
import { conflict, exhausted, invalid } from './errors.js';

export const VNI_MIN = 4096;
export const VNI_MAX = 16777215;
/** Docker's driver option that carries the VNIs of an overlay network, comma-separated, one per subnet. */
export const VXLAN_ID_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export class VniAllocator {
  private readonly used = new Set<number>();
  private cursor = VNI_MIN;

  get count(): number {
    return this.used.size;
  }

  has(vni: number): boolean {
    return this.used.has(vni);
  }

  allocate(): number {
    const span = VNI_MAX - VNI_MIN + 1;
    if (this.used.size >= span) throw exhausted(`no free VXLAN id left in ${VNI_MIN}-${VNI_MAX}`);
    while (this.used.has(this.cursor)) this.cursor = this.cursor >= VNI_MAX ? VNI_MIN : this.cursor + 1;
    const vni = this.cursor;
    this.used.add(vni);
    this.cursor = vni >= VNI_MAX ? VNI_MIN : vni + 1;
    return vni;
  }

  reserve(vni: number): void {
    if (!Number.isInteger(vni) || vni < VNI_MIN || vni > VNI_MAX) throw invalid(`invalid VXLAN id ${vni}: must be between ${VNI_MIN} and ${VNI_MAX}`);
    if (this.used.has(vni)) throw conflict(`VXLAN id ${vni} is already in use`);
    this.used.add(vni);
  }

  release(vni: number): void {
    this.used.delete(vni);
  }
}

/** "4097,4098" → [4097, 4098]; refuses anything that is not a list of numbers. */
export function parseVniList(text: string): number[] {
  if (!text) return [];
  return text.split(',').map((part) => {
    const n = Number(part.trim());
    if (!/^\d+$/.test(part.trim()) || n < VNI_MIN || n > VNI_MAX) {
      throw invalid(`invalid ${VXLAN_ID_OPTION} ${JSON.stringify(text)}: expected VXLAN ids between ${VNI_MIN} and ${VNI_MAX}, comma-separated`);
    }
    return n;
  });
}
