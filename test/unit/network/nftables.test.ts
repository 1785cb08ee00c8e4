// The host's nftables script, rendered whole from the state: the tables say exactly what the plan
// says, and an empty plan removes them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderRuleset } from '../../../agent/network/nftables.js';

const REPLACE = ['add table ip shoal', 'delete table ip shoal', 'add table bridge shoal', 'delete table bridge shoal'];

test('an empty plan only removes the tables (safely when they are absent)', () => {
  assert.equal(renderRuleset({ bridges: [], ports: [] }), REPLACE.join('\n') + '\n');
});

test('gateway bridge, bridge networks and published ports', () => {
  const script = renderRuleset({
    gatewaySubnet: '172.18.0.0/16',
    bridges: [{ name: 'shl-abc', subnet: '10.78.0.0/24', internal: false }, { name: 'shl-int', subnet: '10.79.0.0/24', internal: true }],
    ports: [{ protocol: 'tcp', published: 8080, ip: '10.78.0.5', target: 80 }, { protocol: 'udp', published: 5353, ip: '172.18.0.2', target: 53 }],
  });
  assert.equal(script, [
    ...REPLACE,
    'table ip shoal {',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local tcp dport 8080 dnat to 10.78.0.5:80',
    '    fib daddr type local udp dport 5353 dnat to 172.18.0.2:53',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local tcp dport 8080 dnat to 10.78.0.5:80',
    '    fib daddr type local udp dport 5353 dnat to 172.18.0.2:53',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    ip saddr 172.18.0.0/16 oifname != "shoal_gwbridge" masquerade',
    '    oifname "shoal_gwbridge" ip saddr 172.18.0.0/16 ct status dnat masquerade',
    '    oifname "shoal_gwbridge" ip saddr 127.0.0.0/8 masquerade',
    '    ip saddr 10.78.0.0/24 oifname != "shl-abc" masquerade',
    '    oifname "shl-abc" ip saddr 10.78.0.0/24 ct status dnat masquerade',
    '    oifname "shl-abc" ip saddr 127.0.0.0/8 masquerade',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    iifname { "shoal_gwbridge", "shl-abc" } ip daddr 127.0.0.0/8 ct state != { established, related } drop',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    iifname "shl-int" oifname != "shl-int" drop',
    '    oifname "shl-int" iifname != "shl-int" drop',
    '    ct status dnat accept',
    '    iifname "shoal_gwbridge" oifname "shl-abc" drop',
    '    iifname "shl-abc" oifname "shoal_gwbridge" drop',
    '  }',
    '}',
    'table bridge shoal {',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    iifname "shgw*" oifname "shgw*" drop',
    '  }',
    '}',
    '',
  ].join('\n'));
});

test('bridge networks are isolated from each other, a published port’s connections excepted', () => {
  const script = renderRuleset({
    bridges: ['a', 'b', 'c'].map((x, i) => ({ name: `shl-${x}`, subnet: `10.7${i}.0.0/24`, internal: false })),
    ports: [],
  });
  const lines = script.split('\n').map((l) => l.trim());
  const start = lines.indexOf('chain forward {');
  assert.deepEqual(lines.slice(start + 2, lines.indexOf('}', start)), [
    'ct status dnat accept',
    'iifname "shl-a" oifname { "shl-b", "shl-c" } drop',
    'iifname "shl-b" oifname { "shl-a", "shl-c" } drop',
    'iifname "shl-c" oifname { "shl-a", "shl-b" } drop',
  ]);
});

test('one bridge alone needs no isolation rule', () => {
  const script = renderRuleset({ bridges: [{ name: 'shl-abc', subnet: '10.78.0.0/24', internal: false }], ports: [] });
  assert.doesNotMatch(script, /ct status dnat accept|oifname "shl-abc" drop/);
});

test('without the gateway bridge there is no bridge-family table', () => {
  const script = renderRuleset({ bridges: [{ name: 'shl-abc', subnet: '10.78.0.0/24', internal: false }], ports: [] });
  assert.match(script, /table ip shoal \{/);
  assert.doesNotMatch(script, /table bridge shoal \{/);
});
