// The nft script that replaces a task's VIP table in one transaction (run for real in
// test/integration/dns).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lbScript } from '../../../agent/network/dns/loadbalancer.js';

test('one DNAT rule per VIP: a random pick among several backends, the one backend as is', () => {
  const script = lbScript([
    { vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11', '10.0.0.12', '10.0.0.13'] },
    { vip: '10.0.0.3', serviceName: 'db', backends: ['10.0.0.21'] },
    { vip: '10.0.0.4', serviceName: 'gone', backends: [] },
  ]);
  assert.equal(
    script,
    [
      'table ip shoal-lb',
      'delete table ip shoal-lb',
      'table ip shoal-lb {',
      '\tchain output {',
      '\t\ttype nat hook output priority -100; policy accept;',
      '\t\tip daddr 10.0.0.2 dnat to numgen random mod 3 map { 0 : 10.0.0.11, 1 : 10.0.0.12, 2 : 10.0.0.13 } comment "web"',
      '\t\tip daddr 10.0.0.3 dnat to 10.0.0.21 comment "db"',
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
});

test('no VIP: the table is only removed (declared first, so a missing table is no error)', () => {
  assert.equal(lbScript([]), 'table ip shoal-lb\ndelete table ip shoal-lb\n');
});

test('a service name never breaks out of its comment', () => {
  assert.match(lbScript([{ vip: '10.0.0.2', serviceName: 'a" ; flush ruleset', backends: ['10.0.0.5'] }]), /dnat to 10\.0\.0\.5 comment "a____flush_ruleset"\n/);
});
