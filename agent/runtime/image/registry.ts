// A client for the Distribution (Docker Registry HTTP API v2) read side: manifests and blobs,
// with Bearer token auth (the WWW-Authenticate dance Docker Hub and most registries use) and
// Basic auth. Everything fetched is checked against its digest before anyone may use it.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { indexMediaTypes, manifestMediaTypes, mediaTypes, sha256 } from './oci.js';
import { registryEndpoint } from './reference.js';

export type RegistryAuth = { username: string; password: string } | { token: string };

export interface RegistryOptions {
  /** Allow plain HTTP and unverified TLS. Loopback registries are always treated this way, as Docker does. */
  insecure?: boolean;
  auth?: RegistryAuth;
  /** Called for every HTTP request made (method, URL): counting, logging. */
  onRequest?: (method: string, url: string) => void;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const manifestAccept = [...manifestMediaTypes, ...indexMediaTypes].join(', ');
const maxManifestBytes = 4 * 1024 * 1024;

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** `Bearer realm="...",service="...",scope="..."` -> scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const m of header.slice(space + 1).matchAll(re)) params[(m[1] as string).toLowerCase()] = m[2] ?? m[3] ?? '';
  return { scheme, params };
}

async function readAll(body: http.IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > limit) {
      body.destroy();
      throw new RegistryError(`${what} is larger than ${limit} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

export class RegistryClient {
  private scheme: 'https' | 'http' | undefined;
  private authorization: string | undefined;
  private readonly host: string;
  private readonly insecure: boolean;

  constructor(
    readonly registry: string,
    readonly repository: string,
    private readonly options: RegistryOptions = {},
  ) {
    this.host = registryEndpoint(registry);
    this.insecure = options.insecure === true || isLoopback(this.host);
    if (!this.insecure) this.scheme = 'https';
  }

  private send(method: string, url: URL, headers: Record<string, string>): Promise<Response> {
    this.options.onRequest?.(method, url.href);
    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method, headers: { 'User-Agent': 'shoal', ...headers }, ...(url.protocol === 'https:' && this.insecure ? { rejectUnauthorized: false } : {}) }, (res) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.setTimeout(60_000, () => req.destroy(new RegistryError(`${method} ${url.href}: no answer in 60 s`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** An https attempt first; insecure registries that do not speak TLS fall back to http. */
  private async baseUrl(): Promise<string> {
    if (this.scheme) return `${this.scheme}://${this.host}`;
    try {
      const r = await this.send('GET', new URL(`https://${this.host}/v2/`), {});
      r.body.resume();
      this.scheme = 'https';
    } catch {
      this.scheme = 'http';
    }
    return `${this.scheme}://${this.host}`;
  }

  /** A request to the registry with auth and redirects handled; 4xx/5xx become errors. */
  private async request(method: string, path: string, headers: Record<string, string>, what: string): Promise<Response> {
    let url = new URL(`${await this.baseUrl()}${path}`);
    let authTried = false;
    for (let hop = 0; hop < 10; hop++) {
      const sameHost = url.host === this.host;
      const h = { ...headers, ...(sameHost && this.authorization ? { Authorization: this.authorization } : {}) };
      const res = await this.send(method, url, h);
      if (res.status === 401 && sameHost && !authTried) {
        res.body.resume();
        authTried = true;
        await this.authenticate(String(res.headers['www-authenticate'] ?? ''), what);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        res.body.resume();
        // Blob redirects go to storage (S3, CDN) with their own signed URL: no registry auth there.
        url = new URL(res.headers.location, url);
        continue;
      }
      if (res.status >= 400) {
        const text = (await readAll(res.body, 65536, what).catch(() => Buffer.alloc(0))).toString('utf8').slice(0, 300);
        const hint = res.status === 401 || res.status === 403 ? ' (check the registry credentials)' : res.status === 404 ? ' (no such image or tag?)' : '';
        throw new RegistryError(`${what}: ${method} ${url.href} returned ${res.status}${hint}${text ? `: ${text.trim()}` : ''}`, res.status);
      }
      return res;
    }
    throw new RegistryError(`${what}: too many redirects`);
  }

  private async authenticate(challenge: string, what: string): Promise<void> {
    const { scheme, params } = parseChallenge(challenge);
    const auth = this.options.auth;
    if (scheme === 'basic') {
      if (!auth || !('username' in auth)) throw new RegistryError(`${what}: registry ${this.registry} wants a username and password`, 401);
      this.authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
      return;
    }
    if (scheme !== 'bearer' || !params.realm) throw new RegistryError(`${what}: registry ${this.registry} asked for unsupported auth ${JSON.stringify(challenge)}`, 401);
    if (auth && 'token' in auth) {
      this.authorization = `Bearer ${auth.token}`;
      return;
    }
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const headers: Record<string, string> = {};
    if (auth) headers.Authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    const res = await this.send('GET', tokenUrl, headers);
    const body = await readAll(res.body, 1 << 20, 'token response');
    if (res.status !== 200) throw new RegistryError(`${what}: token server ${tokenUrl.origin} returned ${res.status}: ${body.toString().slice(0, 200)}`, res.status);
    const json = JSON.parse(body.toString()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new RegistryError(`${what}: token server ${tokenUrl.origin} returned no token`);
    this.authorization = `Bearer ${token}`;
  }

  /** A manifest or index by tag or digest, checked against the digest when one was asked for. */
  async getManifest(reference: string): Promise<{ mediaType: string; digest: string; data: Buffer }> {
    const what = `manifest ${this.registry}/${this.repository}:${reference}`;
    const res = await this.request('GET', `/v2/${this.repository}/manifests/${reference}`, { Accept: manifestAccept }, what);
    const data = await readAll(res.body, maxManifestBytes, what);
    const digest = sha256(data);
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(`${what}: content hashes to ${digest}`);
    const headerDigest = res.headers['docker-content-digest'];
    if (typeof headerDigest === 'string' && headerDigest.startsWith('sha256:') && headerDigest !== digest) {
      throw new RegistryError(`${what}: registry says digest ${headerDigest} but the content hashes to ${digest}`);
    }
    const contentType = String(res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    let parsed: { mediaType?: string; manifests?: unknown };
    try {
      parsed = JSON.parse(data.toString()) as { mediaType?: string; manifests?: unknown };
    } catch {
      throw new RegistryError(`${what}: not JSON (content type ${contentType || 'none'})`);
    }
    // The document's own mediaType wins; old OCI documents leave it out and rely on the header.
    const known = [...manifestMediaTypes, ...indexMediaTypes];
    const mediaType = parsed.mediaType ?? (known.includes(contentType) ? contentType : parsed.manifests ? mediaTypes.ociIndex : mediaTypes.ociManifest);
    return { mediaType, digest, data };
  }

  /** Downloads a blob into `dest` (atomically), verifying its digest and size. */
  async fetchBlob(digest: string, dest: string, size?: number, onBytes?: (received: number) => void): Promise<void> {
    const what = `blob ${digest} of ${this.registry}/${this.repository}`;
    const res = await this.request('GET', `/v2/${this.repository}/blobs/${digest}`, {}, what);
    const hash = createHash('sha256');
    let n = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        hash.update(chunk);
        n += chunk.length;
        onBytes?.(n);
        cb(null, chunk);
      },
    });
    const tmp = `${dest}.part-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      try {
        await pipeline(res.body, counter, createWriteStream(tmp));
      } catch (err) {
        // Node says only "aborted" or "terminated" when the connection drops mid-body.
        throw new RegistryError(`${what}: download interrupted after ${n}${size !== undefined ? ` of ${size}` : ''} bytes (${(err as Error).message})`);
      }
      const got = 'sha256:' + hash.digest('hex');
      if (got !== digest) throw new RegistryError(`${what}: downloaded content hashes to ${got}`);
      if (size !== undefined && n !== size) throw new RegistryError(`${what}: got ${n} bytes, manifest says ${size}`);
      await rename(tmp, dest);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}
