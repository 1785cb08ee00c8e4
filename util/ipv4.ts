// IPv4 addresses as unsigned 32-bit numbers: the one parser and formatter the allocator, the
// agent's drivers and the lab share. Strict dotted quads only (no leading zeros, which some
// parsers read as octal).

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Dotted quad → number; undefined when `text` is not one. */
export function tryParseIp(text: string): number | undefined {
  const m = IPV4.exec(text.trim());
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function formatIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
