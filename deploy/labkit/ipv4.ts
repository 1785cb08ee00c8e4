// IPv4 subnets for the lab's address plan. Only what the lab needs: parse a CIDR, name its
// addresses by offset. Errors name the bad value and say what would be valid.
import { UserError } from '../../util/command.js';
import { formatIp, tryParseIp } from '../../util/ipv4.js';

export interface Subnet {
  /** As given, normalised: `198.18.0.0/24`. */
  cidr: string;
  network: number;
  prefixLen: number;
  /** Number of addresses, network and broadcast included. */
  size: number;
}

export const parseIPv4 = tryParseIp;
export const formatIPv4 = formatIp;

/** Parses `A.B.C.D/P`; the lab wants a real network (host bits zero) between /8 and /30. */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  const addr = m ? parseIPv4(m[1]!) : undefined;
  const prefixLen = m ? Number(m[2]) : NaN;
  if (addr === undefined || !(prefixLen >= 8 && prefixLen <= 30)) {
    throw new UserError(`invalid subnet "${cidr}": expected an IPv4 CIDR from /8 to /30, such as 198.18.0.0/24`);
  }
  const size = 2 ** (32 - prefixLen);
  const network = addr - (addr % size);
  if (network !== addr) {
    throw new UserError(`invalid subnet "${cidr}": host bits are set (did you mean ${formatIPv4(network)}/${prefixLen}?)`);
  }
  return { cidr: `${formatIPv4(network)}/${prefixLen}`, network, prefixLen, size };
}

/** The address `offset` places after the network address. */
export function addressAt(subnet: Subnet, offset: number): string {
  if (offset <= 0 || offset >= subnet.size - 1) throw new RangeError(`offset ${offset} is outside ${subnet.cidr}`);
  return formatIPv4(subnet.network + offset);
}
