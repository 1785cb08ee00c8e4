import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conmonArgs, parseSyncMessage } from '../../../agent/runtime/runc/conmon.js';
import { runcMessage } from '../../../agent/runtime/runc/runc.js';
import { hostsFile, resolvConf } from '../../../agent/runtime/spec/hostfiles.js';
import { normalizeSignal, signalNumber } from '../../../agent/runtime/spec/signals.js';
import { validateId } from '../../../agent/runtime/runc/layout.js';

test('sync pipe messages: a pid, or -1 with runc’s message', () => {
  assert.deepEqual(parseSyncMessage('{"data": 1234}\n'), { data: 1234 });
  assert.deepEqual(parseSyncMessage('{"data": -1, "message": "boom"}\n'), { data: -1, message: 'boom' });
  assert.equal(parseSyncMessage(''), undefined);
  assert.equal(parseSyncMessage('{"nope": 1}'), undefined);
});

test('conmon gets a k8s-file log, an exit dir and runc’s root', () => {
  const args = conmonArgs({
    conmonPath: 'conmon', runcPath: '/usr/sbin/runc', runcRoot: '/r/runc', id: 'c1', name: 'web', bundle: '/b',
    containerPidFile: '/b/p', conmonPidFile: '/b/cp', logPath: '/b/ctr.log', exitDir: '/b/exits', socketDir: '/s',
  });
  assert.ok(args.join(' ').includes('--log-path k8s-file:/b/ctr.log'));
  assert.ok(args.join(' ').includes('--runtime-arg --root=/r/runc'));
  assert.ok(args.join(' ').includes('--exit-dir /b/exits'));
});

test('runc error text is reduced to its msg', () => {
  assert.equal(runcMessage('time="x" level=error msg="container \\"a\\" does not exist"\n'), 'container "a" does not exist');
  assert.equal(runcMessage('plain failure\n'), 'plain failure');
});

test('signals by name, short name or number', () => {
  assert.equal(normalizeSignal('term'), 'SIGTERM');
  assert.equal(normalizeSignal('SIGKILL'), 'SIGKILL');
  assert.equal(normalizeSignal(9), 'SIGKILL');
  assert.equal(signalNumber('USR1'), 10);
  assert.throws(() => normalizeSignal('SIGNOPE'), /unknown signal: "SIGNOPE"/);
});

test('container ids are validated with the bad value named', () => {
  validateId('web.1_a-b');
  assert.throws(() => validateId('../x'), /invalid container id "..\/x"/);
  assert.throws(() => validateId(''), /invalid container id ""/);
});

test('hosts and resolv.conf files', () => {
  const hosts = hostsFile('web', '10.0.0.2', [{ ip: '10.0.0.9', names: ['db'] }]);
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(hosts, /^10\.0\.0\.9\tdb$/m);
  assert.match(hosts, /^10\.0\.0\.2\tweb$/m);
  const host = 'nameserver 127.0.0.53\nnameserver 192.168.1.1\nsearch corp\noptions ndots:2\n';
  assert.equal(resolvConf(host, undefined), 'nameserver 192.168.1.1\nsearch corp\noptions ndots:2\n');
  assert.equal(resolvConf('nameserver 127.0.0.1\n', undefined), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  assert.equal(resolvConf(host, { nameservers: ['10.0.0.53'], search: ['svc'] }), 'nameserver 10.0.0.53\nsearch svc\n');
});
