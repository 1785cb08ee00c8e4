// Platforms the task's image supports (placement.platforms): the node's OS and architecture must
// match one of them; an empty field matches anything. x86_64 is amd64 and aarch64 is arm64, as
// kernels and image indexes name the same machines differently.
import type { Platform } from '../../../proto/gen/objects.js';
import { nodes, type Filter } from './filter.js';

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64' };

function arch(a: string): string {
  const lower = a.toLowerCase();
  return ARCH_ALIASES[lower] ?? lower;
}

export function platformMatches(wanted: Platform, node: Platform | null | undefined): boolean {
  const os = node?.os ?? '';
  const architecture = node?.architecture ?? '';
  return (wanted.architecture === '' || arch(wanted.architecture) === arch(architecture)) && (wanted.os === '' || wanted.os.toLowerCase() === os.toLowerCase());
}

export const platformFilter: Filter = {
  name: 'platform',
  dynamic: false,
  enabled: (g) => g.platforms.length > 0,
  check: (node, g) => (g.platforms.some((p) => platformMatches(p, node.node.description?.platform)) ? undefined : ''),
  explain: (count) => `unsupported platform on ${nodes(count)}`,
};
