// Join tokens in Docker's shape: SWMTKN-1-<CA digest>-<secret>. The digest (SHA-256 of the root
// CA certificate, base 36) lets a joining node check the manager it reached before trusting it;
// the secret (128 random bits, base 36) says which role it may join as.
import { randomBytes, timingSafeEqual } from 'node:crypto';

const PREFIX = 'SWMTKN';
const VERSION = '1';
const DIGEST_CHARS = 50; // 256 bits in base 36
const SECRET_CHARS = 25; // 128 bits in base 36

function toBase36(bytes: Uint8Array, width: number): string {
  return BigInt('0x' + Buffer.from(bytes).toString('hex')).toString(36).padStart(width, '0');
}

function fromBase36(text: string, bytes: number): Buffer {
  let n = 0n;
  for (const c of text) n = n * 36n + BigInt(parseInt(c, 36));
  return Buffer.from(n.toString(16).padStart(bytes * 2, '0'), 'hex');
}

export function newSecret(): string {
  return toBase36(randomBytes(16), SECRET_CHARS);
}

export function formatJoinToken(caDigest: Uint8Array, secret: string): string {
  return `${PREFIX}-${VERSION}-${toBase36(caDigest, DIGEST_CHARS)}-${secret}`;
}

export class JoinTokenError extends Error {
  override name = 'JoinTokenError';
}

export interface ParsedJoinToken {
  caDigest: Buffer;
  secret: string;
}

export function parseJoinToken(token: string): ParsedJoinToken {
  const parts = token.split('-');
  const shown = token.length > 20 ? token.slice(0, 16) + '…' : token;
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new JoinTokenError(`invalid join token "${shown}": expected ${PREFIX}-${VERSION}-<digest>-<secret>`);
  if (parts[1] !== VERSION) throw new JoinTokenError(`invalid join token "${shown}": unsupported version ${parts[1]}`);
  const [, , digest, secret] = parts as [string, string, string, string];
  if (!/^[0-9a-z]+$/.test(digest) || digest.length !== DIGEST_CHARS) throw new JoinTokenError(`invalid join token "${shown}": malformed CA digest`);
  if (!/^[0-9a-z]+$/.test(secret) || secret.length !== SECRET_CHARS) throw new JoinTokenError(`invalid join token "${shown}": malformed secret`);
  return { caDigest: fromBase36(digest, 32), secret };
}

/** Constant-time comparison of a presented secret with an expected one. */
export function secretMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
