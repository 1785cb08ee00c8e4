// A Docker-style token server for the tests: answers `GET /token?service=&scope=` (Basic auth) with
// an RS256 JWT carrying the `access` claim distribution checks, signed by a throwaway key whose
// self-signed certificate (made by openssl) the registry trusts through `rootcertbundle`.
import { execFileSync } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { After } from './helpers.js';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Token requests answered, and refused. */
  issued: number;
  refused: number;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export async function startTokenServer(t: After, dir: string, user: { username: string; password: string }): Promise<TokenServer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=shoal-test-token'], { stdio: 'ignore' });
  const key = readFileSync(keyFile, 'utf8');
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const ts: TokenServer = { realm: '', service: 'shoal-test', issuer: 'shoal-test-issuer', certFile, issued: 0, refused: 0 };
  const expected = 'Basic ' + Buffer.from(`${user.username}:${user.password}`).toString('base64');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token' || req.headers.authorization !== expected) {
      ts.refused++;
      res.writeHead(401).end('{"details":"bad credentials"}');
      return;
    }
    const access = url.searchParams.getAll('scope').map((scope) => {
      const [type, ...rest] = scope.split(':');
      const actions = (rest.pop() ?? '').split(',');
      return { type, name: rest.join(':'), actions };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: ts.issuer, sub: user.username, aud: url.searchParams.get('service'), exp: now + 600, nbf: now - 60, iat: now, jti: randomBytes(8).toString('hex'), access }));
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key);
    ts.issued++;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}`, expires_in: 600 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  ts.realm = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/token`;
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return ts;
}

/** The registry config section that makes it demand tokens from `ts`. */
export function tokenAuthYaml(ts: TokenServer): string[] {
  return ['auth:', '  token:', `    realm: ${ts.realm}`, `    service: ${ts.service}`, `    issuer: ${ts.issuer}`, `    rootcertbundle: ${ts.certFile}`];
}
