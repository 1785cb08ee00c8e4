// The host's nftables rules, rendered whole from the attacher's state and loaded in one
// transaction that replaces the previous table: no rule handles to track, nothing left behind
// after a crash, and the rules after a restart are exactly what the state says. Connection
// tracking keeps NAT bindings of open connections across a reload.
//
//   table ip shoal      masquerade for the gateway bridge and bridge networks; host-mode
//                       published ports as DNAT for traffic to the host's own addresses,
//                       arriving (prerouting) or local (output, 127.0.0.1 included); internal
//                       bridges cut off; bridges isolated from each other (Docker's
//                       DOCKER-ISOLATION chains)
//   table bridge shoal  tasks on the gateway bridge may reach the host, not each other (they
//                       may belong to different overlay networks: Docker's icc=false there)
//
// Published ports on 127.0.0.1: the output DNAT sends a packet from 127.0.0.1 out of a bridge,
// which the kernel allows only with route_localnet on that bridge (set by the attacher, as
// Docker does on docker0 without its userland proxy); it is masqueraded to the bridge's address
// so the task can answer. route_localnet would also let a task address the host's loopback
// services through the bridge (CVE-2020-8558), so new traffic from a bridge to 127.0.0.0/8 is
// dropped on input, as kube-proxy does.
import { GW_BRIDGE, GW_VETH_PREFIX, NFT_TABLE } from './names.js';

export interface NatBridge {
  /** The Linux bridge ("shl-…", or the gateway bridge). */
  name: string;
  /** Its subnet, "10.0.2.0/24". */
  subnet: string;
  /** No way in or out (Docker's --internal): no masquerade, forwarding to and from it dropped. */
  internal: boolean;
}

export interface PortRule {
  protocol: 'tcp' | 'udp' | 'sctp';
  published: number;
  /** The task address traffic is sent to. */
  ip: string;
  target: number;
}

export interface RulesetPlan {
  /** The gateway bridge's subnet, when it exists. */
  gatewaySubnet?: string;
  bridges: NatBridge[];
  ports: PortRule[];
}

const q = (name: string) => JSON.stringify(name);

/** The script that makes the tables say exactly `plan` (or removes them when it asks for nothing). */
export function renderRuleset(plan: RulesetPlan): string {
  // "add" then "delete" makes the delete safe when the table is absent; the whole file is one transaction.
  const lines = [`add table ip ${NFT_TABLE}`, `delete table ip ${NFT_TABLE}`, `add table bridge ${NFT_TABLE}`, `delete table bridge ${NFT_TABLE}`];
  const nat: NatBridge[] = [...(plan.gatewaySubnet ? [{ name: GW_BRIDGE, subnet: plan.gatewaySubnet, internal: false }] : []), ...plan.bridges];
  if (nat.length > 0 || plan.ports.length > 0) {
    const dnat = plan.ports.map((p) => `${p.protocol} dport ${p.published} dnat to ${p.ip}:${p.target}`);
    const open = nat.filter((b) => !b.internal);
    const names = (bs: NatBridge[]) => (bs.length === 1 ? q(bs[0]!.name) : `{ ${bs.map((b) => q(b.name)).join(', ')} }`);
    lines.push(
      `table ip ${NFT_TABLE} {`,
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      ...dnat.map((r) => `    fib daddr type local ${r}`),
      '  }',
      '  chain output {',
      '    type nat hook output priority -100; policy accept;',
      ...dnat.map((r) => `    fib daddr type local ${r}`),
      '  }',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      ...open.flatMap((b) => [
        `    ip saddr ${b.subnet} oifname != ${q(b.name)} masquerade`,
        // Hairpin: a task reaching a published port of a task on its own bridge.
        `    oifname ${q(b.name)} ip saddr ${b.subnet} ct status dnat masquerade`,
        // The host reaching a published port on 127.0.0.1 (see above).
        `    oifname ${q(b.name)} ip saddr 127.0.0.0/8 masquerade`,
      ]),
      '  }',
      ...(open.length > 0
        ? ['  chain input {', '    type filter hook input priority filter; policy accept;', `    iifname ${names(open)} ip daddr 127.0.0.0/8 ct state != { established, related } drop`, '  }']
        : []),
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      ...nat.filter((b) => b.internal).flatMap((b) => [`    iifname ${q(b.name)} oifname != ${q(b.name)} drop`, `    oifname ${q(b.name)} iifname != ${q(b.name)} drop`]),
      // Isolation: no bridge forwards to another, except a published port's connection (DNAT: the
      // task asked for it to be reachable from anywhere that reaches the host).
      ...(open.length > 1
        ? ['    ct status dnat accept', ...open.map((b) => `    iifname ${q(b.name)} oifname ${names(open.filter((o) => o !== b))} drop`)]
        : []),
      '  }',
      '}',
    );
  }
  if (plan.gatewaySubnet) {
    lines.push(
      `table bridge ${NFT_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      `    iifname "${GW_VETH_PREFIX}*" oifname "${GW_VETH_PREFIX}*" drop`,
      '  }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}
