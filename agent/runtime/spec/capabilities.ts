// Linux capability sets for a container: Docker's default set, adjusted by capAdd/capDrop the way
// `docker run --cap-add/--cap-drop` does (ALL accepted, names with or without the CAP_ prefix).

/** Every capability the kernel headers of this era define (linux/capability.h, up to 40). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Bit number of each capability, in the order of ALL_CAPABILITIES (it follows the kernel's numbering). */
export function capabilityBit(name: string): number {
  return ALL_CAPABILITIES.indexOf(normalizeCapability(name));
}

/** `net_raw`, `NET_RAW`, `CAP_NET_RAW` → `CAP_NET_RAW`; `all` → `ALL`; anything else is an error. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!ALL_CAPABILITIES.includes(full)) {
    throw new Error(`unknown capability: "${name}" (expected a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL)`);
  }
  return full;
}

/**
 * Docker's rules (moby TweakCapabilities since 20.10): start from the defaults (every capability
 * when capAdd holds ALL), remove capDrop (everything for ALL), then add capAdd: an add always wins.
 */
export function resolveCapabilities(capAdd: string[] = [], capDrop: string[] = []): string[] {
  const add = capAdd.map(normalizeCapability);
  const drop = capDrop.map(normalizeCapability);
  const set = new Set<string>(add.includes('ALL') ? ALL_CAPABILITIES : DEFAULT_CAPABILITIES);
  if (drop.includes('ALL')) {
    set.clear();
  } else {
    for (const cap of drop) set.delete(cap);
  }
  for (const cap of add) if (cap !== 'ALL') set.add(cap);
  return ALL_CAPABILITIES.filter((cap) => set.has(cap));
}
