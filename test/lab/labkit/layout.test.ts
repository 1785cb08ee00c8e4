// The lab's plan of names and addresses: pure, so checked without building anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLabNamespace, labLayout, validateLabName } from '../../../deploy/labkit/layout.js';
import { parseSubnet } from '../../../deploy/labkit/ipv4.js';

test('hosts are numbered from the start of the subnet; the last usable address is kept', () => {
  const l = labLayout('shoal', 3);
  assert.deepEqual(
    l.hosts.map((h) => [h.name, h.cidr, h.mac, h.netns]),
    [
      ['h1', '198.18.0.1/24', '02:00:c6:12:00:01', 'shoal-h1'],
      ['h2', '198.18.0.2/24', '02:00:c6:12:00:02', 'shoal-h2'],
      ['h3', '198.18.0.3/24', '02:00:c6:12:00:03', 'shoal-h3'],
    ],
  );
  assert.equal(l.reserved.registry, '198.18.0.254');
  assert.equal(l.underlay.netns, 'shoal-underlay');
  assert.equal(l.hosts[0]!.utsPath, '/run/shoal-lab/shoal/hosts/h1/uts');
  assert.equal(l.hosts[0]!.dataDir, '/var/lib/shoal-lab/shoal/h1');
  assert.equal(labLayout('x', 2, '10.0.8.0/22').hosts[1]!.cidr, '10.0.8.2/22');
});

test('a subnet has room for its usable addresses minus the registry', () => {
  assert.equal(labLayout('x', 253).hosts.at(-1)!.address, '198.18.0.253');
  assert.throws(() => labLayout('x', 254), /invalid host count 254: 198\.18\.0\.0\/24 has room for 1 to 253 hosts/);
  assert.throws(() => labLayout('x', 0), /invalid host count 0/);
  assert.throws(() => labLayout('x', 2, '10.0.0.0/30'), /room for 1 to 1 hosts/);
});

test('subnets must be IPv4 networks', () => {
  assert.equal(parseSubnet('192.168.4.0/24').size, 256);
  assert.throws(() => parseSubnet('192.168.4.1/24'), /host bits are set \(did you mean 192\.168\.4\.0\/24\?\)/);
  assert.throws(() => parseSubnet('300.1.1.0/24'), /invalid subnet "300\.1\.1\.0\/24"/);
  assert.throws(() => parseSubnet('10.0.0.0/31'), /from \/8 to \/30/);
  assert.throws(() => parseSubnet('fd00::/64'), /expected an IPv4 CIDR/);
});

test('a lab owns only its own namespaces, even when its name prefixes another lab', () => {
  assert.ok(isLabNamespace('a', 'a-h1'));
  assert.ok(isLabNamespace('a', 'a-underlay'));
  assert.ok(isLabNamespace('a', 'a-registry'));
  assert.ok(!isLabNamespace('a', 'a-h1-h1'), "lab a-h1's host");
  assert.ok(!isLabNamespace('a', 'a-h1-underlay'));
  assert.ok(!isLabNamespace('a-h1', 'a-h1'), "lab a's host");
  assert.ok(!isLabNamespace('a', 'ab-h1'));
  assert.ok(!isLabNamespace('a', 'a-h0'));
});

test('lab names are safe as file and namespace names', () => {
  assert.equal(validateLabName('ci-1.x_y'), 'ci-1.x_y');
  for (const bad of ['', 'Shoal', '-x', '../etc', 'a/b', 'a b', 'x'.repeat(41)]) {
    assert.throws(() => validateLabName(bad), /invalid lab name/, bad);
  }
});
