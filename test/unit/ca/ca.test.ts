import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RootCA, identityOf, newNodeKeyAndCsr, certificateDigest } from '../../../manager/ca/ca.js';
import { parseCsr, CsrError } from '../../../manager/ca/x509.js';
import { formatJoinToken, parseJoinToken, newSecret, secretMatches, JoinTokenError } from '../../../manager/ca/token.js';

const ca = RootCA.create('clusterabc');

test('the root is a self-signed P-256 CA naming the cluster', () => {
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, true);
  assert.equal(cert.verify(cert.publicKey), true);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.match(cert.subject, /O=clusterabc/);
  assert.equal(ca.clusterId, 'clusterabc');
  // a RootCA rebuilt from its PEMs is the same CA
  assert.equal(new RootCA({ keyPem: ca.keyPem, certPem: ca.certPem }).digest().equals(ca.digest()), true);
});

test('a node certificate names its ID, role and cluster, and chains to the root', () => {
  const { csrPem } = newNodeKeyAndCsr('node1');
  const pem = ca.issue(csrPem, { nodeId: 'node1', role: 'worker', ipAddresses: ['198.18.0.2'] });
  const cert = new X509Certificate(pem);
  assert.equal(cert.checkIssued(new X509Certificate(ca.certPem)), true);
  assert.equal(ca.issued(pem), true);
  assert.equal(RootCA.create().issued(pem), false);
  const id = identityOf(pem);
  assert.deepEqual({ nodeId: id.nodeId, role: id.role, clusterId: id.clusterId }, { nodeId: 'node1', role: 'worker', clusterId: 'clusterabc' });
  assert.match(cert.subjectAltName ?? '', /IP Address:198\.18\.0\.2/);
  assert.match(cert.subjectAltName ?? '', /DNS:shoal-worker/);
  assert.ok(id.notAfter.getTime() > Date.now() + 80 * 24 * 3600 * 1000);
});

test('openssl accepts the chain and the key usages', (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) return t.skip('openssl is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'shoal-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { csrPem } = newNodeKeyAndCsr('m1');
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'node.pem'), ca.issue(csrPem, { nodeId: 'm1', role: 'manager' }));
  for (const purpose of ['sslserver', 'sslclient']) {
    const r = spawnSync('openssl', ['verify', '-purpose', purpose, '-CAfile', join(dir, 'ca.pem'), join(dir, 'node.pem')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  }
});

test('a tampered certificate request is refused', () => {
  const { csrPem } = newNodeKeyAndCsr('n');
  assert.doesNotThrow(() => parseCsr(csrPem));
  const body = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
  body[body.length - 5]! ^= 0xff; // inside the signature
  const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${body.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  assert.throws(() => parseCsr(bad), CsrError);
  assert.throws(() => parseCsr('garbage'), /invalid certificate request/);
});

test('join tokens carry the CA digest and a secret, and parse back', () => {
  const secret = newSecret();
  const token = formatJoinToken(ca.digest(), secret);
  assert.match(token, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  const parsed = parseJoinToken(token);
  assert.equal(parsed.caDigest.equals(certificateDigest(ca.certPem)), true);
  assert.equal(parsed.secret, secret);
  assert.equal(secretMatches(parsed.secret, secret), true);
  assert.equal(secretMatches(parsed.secret, newSecret()), false);
});

test('malformed join tokens are refused with the reason', () => {
  assert.throws(() => parseJoinToken('nope'), (e: unknown) => e instanceof JoinTokenError && /invalid join token "nope"/.test(e.message));
  assert.throws(() => parseJoinToken('SWMTKN-2-aaa-bbb'), /unsupported version 2/);
  assert.throws(() => parseJoinToken(`SWMTKN-1-${'a'.repeat(49)}-${'b'.repeat(25)}`), /malformed CA digest/);
  assert.throws(() => parseJoinToken(`SWMTKN-1-${'a'.repeat(50)}-${'B'.repeat(25)}`), /malformed secret/);
});
