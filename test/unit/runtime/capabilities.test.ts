import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, capabilityBit, normalizeCapability, resolveCapabilities } from '../../../agent/runtime/spec/capabilities.js';

test('names are accepted with or without CAP_, in any case; ALL stays ALL', () => {
  assert.equal(normalizeCapability('net_raw'), 'CAP_NET_RAW');
  assert.equal(normalizeCapability('CAP_SYS_ADMIN'), 'CAP_SYS_ADMIN');
  assert.equal(normalizeCapability('all'), 'ALL');
});

test('an unknown capability is an error naming it', () => {
  assert.throws(() => resolveCapabilities(['NET_RAWR']), /unknown capability: "NET_RAWR"/);
  assert.throws(() => resolveCapabilities([], ['cap_bogus']), /"cap_bogus"/);
});

test("defaults are Docker's fourteen", () => {
  const caps = resolveCapabilities();
  assert.equal(caps.length, 14);
  assert.deepEqual([...caps].sort(), [...DEFAULT_CAPABILITIES].sort());
});

test('drop removes, add adds, add wins over drop, ALL works both ways', () => {
  assert.ok(!resolveCapabilities([], ['NET_RAW']).includes('CAP_NET_RAW'));
  assert.ok(resolveCapabilities(['NET_ADMIN']).includes('CAP_NET_ADMIN'));
  assert.deepEqual(resolveCapabilities([], ['ALL']), []);
  assert.deepEqual(resolveCapabilities(['CHOWN'], ['ALL']), ['CAP_CHOWN']);
  assert.deepEqual(resolveCapabilities(['ALL']), [...ALL_CAPABILITIES]);
  assert.ok(!resolveCapabilities(['ALL'], ['SYS_ADMIN']).includes('CAP_SYS_ADMIN'));
  assert.ok(resolveCapabilities(['NET_RAW'], ['NET_RAW']).includes('CAP_NET_RAW'));
});

test('bit numbers follow the kernel', () => {
  assert.equal(capabilityBit('CHOWN'), 0);
  assert.equal(capabilityBit('NET_RAW'), 13);
  assert.equal(capabilityBit('SYS_ADMIN'), 21);
  assert.equal(capabilityBit('CHECKPOINT_RESTORE'), 40);
});
