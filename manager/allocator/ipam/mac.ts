// MAC addresses derived from the IPv4 address, as Docker does (02:42 then the four address
// bytes): locally administered, unique wherever the IP is, and the same on every node, so peers
// can program neighbour entries without asking.
import { parseIp } from './ipv4.js';

export function macFromIp(ip: string | number): string {
  const n = typeof ip === 'number' ? ip : parseIp(ip.split('/')[0]!);
  const bytes = [0x02, 0x42, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
