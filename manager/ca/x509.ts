// X.509 certificates and PKCS#10 certificate requests for ECDSA P-256 keys, built with der.ts and
// signed with node:crypto. Parsing of issued certificates is left to crypto.X509Certificate.
import { createPublicKey, createHash, sign, verify, randomBytes, type KeyObject } from 'node:crypto';
import * as der from './der.js';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export interface DistinguishedName {
  /** CN: a node's ID, or the CA's name. */
  commonName: string;
  /** OU: a node's role. */
  organizationalUnit?: string;
  /** O: the cluster's ID. */
  organization?: string;
}

export interface CertificateOptions {
  subject: DistinguishedName;
  issuer: DistinguishedName;
  subjectKey: KeyObject;
  issuerKey: KeyObject;
  /** The issuer's public key, for the authority key identifier. */
  issuerPublicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  isCA?: boolean;
  dnsNames?: string[];
  ipAddresses?: string[];
}

const signatureAlgorithm = der.seq(der.oid(OID.ecdsaWithSha256));

function name(dn: DistinguishedName): Buffer {
  const rdn = (oidText: string, value: string) => der.set(der.seq(der.oid(oidText), der.utf8(value)));
  const parts: Buffer[] = [];
  if (dn.organization) parts.push(rdn(OID.organization, dn.organization));
  if (dn.organizationalUnit) parts.push(rdn(OID.organizationalUnit, dn.organizationalUnit));
  parts.push(rdn(OID.commonName, dn.commonName));
  return der.seq(...parts);
}

function spki(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** RFC 5280 method 1: SHA-1 of the public key bits. */
function keyIdentifier(key: KeyObject): Buffer {
  const info = der.children(der.read(spki(key)));
  const bits = info[1]!.content.subarray(1); // skip the unused-bits byte
  return createHash('sha1').update(bits).digest();
}

function extension(oidText: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.seq(der.oid(oidText), der.bool(true), der.octets(value)) : der.seq(der.oid(oidText), der.octets(value));
}

function ipBytes(ip: string): Buffer {
  const v4 = ip.split('.');
  if (v4.length === 4 && v4.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return Buffer.from(v4.map(Number));
  throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
}

function toPem(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export function fromPem(pem: string, label: string): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`no ${label} in PEM input`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export function createCertificate(o: CertificateOptions): string {
  // Key usage bits, most significant first: digitalSignature(0) ... keyCertSign(5), cRLSign(6).
  const keyUsage = o.isCA ? der.bitString(Buffer.from([0x86]), 1) : der.bitString(Buffer.from([0xa0]), 5); // CA: digitalSignature|keyCertSign|cRLSign; leaf: digitalSignature|keyEncipherment
  const extensions: Buffer[] = [
    extension(OID.basicConstraints, true, o.isCA ? der.seq(der.bool(true)) : der.seq()),
    extension(OID.keyUsage, true, keyUsage),
    extension(OID.subjectKeyIdentifier, false, der.octets(keyIdentifier(o.subjectKey))),
    extension(OID.authorityKeyIdentifier, false, der.seq(der.implicit(0, keyIdentifier(o.issuerPublicKey)))),
  ];
  if (!o.isCA) extensions.push(extension(OID.extKeyUsage, false, der.seq(der.oid(OID.serverAuth), der.oid(OID.clientAuth))));
  const altNames = [
    ...(o.dnsNames ?? []).map((d) => der.implicit(2, Buffer.from(d, 'ascii'))),
    ...(o.ipAddresses ?? []).map((ip) => der.implicit(7, ipBytes(ip))),
  ];
  if (altNames.length) extensions.push(extension(OID.subjectAltName, false, der.seq(...altNames)));

  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const tbs = der.seq(
    der.explicit(0, der.integer(2)),
    der.integer(serial),
    signatureAlgorithm,
    name(o.issuer),
    der.seq(der.time(o.notBefore), der.time(o.notAfter)),
    name(o.subject),
    spki(o.subjectKey),
    der.explicit(3, der.seq(...extensions)),
  );
  const signature = sign('sha256', tbs, o.issuerKey);
  return toPem('CERTIFICATE', der.seq(tbs, signatureAlgorithm, der.bitString(signature)));
}

/** A PKCS#10 request: proves possession of the key; the CA decides the subject itself. */
export function createCsr(privateKey: KeyObject, commonName: string): string {
  const info = der.seq(der.integer(0), name({ commonName }), spki(privateKey), der.explicit(0, Buffer.alloc(0)));
  const signature = sign('sha256', info, privateKey);
  return toPem('CERTIFICATE REQUEST', der.seq(info, signatureAlgorithm, der.bitString(signature)));
}

export class CsrError extends Error {
  override name = 'CsrError';
}

/** Parses a request and checks its self-signature; returns the public key it asks a certificate for. */
export function parseCsr(pem: string): { publicKey: KeyObject } {
  try {
    const top = der.children(der.read(fromPem(pem, 'CERTIFICATE REQUEST')));
    const [info, alg, sig] = top;
    if (!info || !alg || !sig) throw new Error('expected info, algorithm and signature');
    const algOid = der.decodeOid(der.children(alg)[0]!.content);
    if (algOid !== OID.ecdsaWithSha256) throw new Error(`unsupported signature algorithm ${algOid}`);
    const fields = der.children(info);
    const publicKey = createPublicKey({ key: fields[2]!.raw, format: 'der', type: 'spki' });
    if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the key must be ECDSA P-256');
    }
    if (!verify('sha256', info.raw, publicKey, sig.content.subarray(1))) throw new Error('bad signature');
    return { publicKey };
  } catch (e) {
    throw new CsrError(`invalid certificate request: ${(e as Error).message}`);
  }
}
