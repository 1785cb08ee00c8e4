// Image references the way Docker spells them: `busybox`, `busybox:1.36`,
// `registry.example.com:5000/team/app:v2`, `app@sha256:...`. A reference without a registry
// means Docker Hub, and a one-part Hub name lives under `library/`.

export interface ImageReference {
  /** Registry host[:port] as the user wrote it; `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export class ReferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReferenceError';
  }
}

const hubRegistry = 'docker.io';
const componentRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagRe = /^[\w][\w.-]{0,127}$/;
const digestRe = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: string): boolean {
  return digestRe.test(s);
}

/** Parses a reference; `latest` is the tag when neither tag nor digest is given. */
export function parseReference(input: string): ImageReference {
  const bad = (why: string): ReferenceError => new ReferenceError(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  let rest = input.trim();
  if (rest === '') throw bad('it is empty');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(`digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagRe.test(tag)) throw bad(`tag ${JSON.stringify(tag)} may hold only letters, digits, '_', '.', '-' (at most 128)`);
  }
  const parts = rest.split('/');
  let registry = hubRegistry;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = hubRegistry;
  if (registry === hubRegistry && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!componentRe.test(p)) throw bad(`name component ${JSON.stringify(p)} must be lowercase letters, digits and separators`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: parts.join('/'), ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** `registry/repository`, the name images are recorded under. */
export function repoName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The fully spelled reference: `docker.io/library/busybox:latest` or `...@sha256:...`. */
export function formatReference(ref: ImageReference): string {
  return repoName(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/** The short form users type and Docker prints: `busybox:latest`, `127.0.0.1:5000/app:v1`. */
export function familiarName(full: string): string {
  let s = full;
  if (s.startsWith(`${hubRegistry}/library/`) && !s.slice(`${hubRegistry}/library/`.length).includes('/')) s = s.slice(`${hubRegistry}/library/`.length);
  else if (s.startsWith(`${hubRegistry}/`)) s = s.slice(`${hubRegistry}/`.length);
  return s;
}

/** The host to talk HTTP to for a registry name. */
export function registryEndpoint(registry: string): string {
  return registry === hubRegistry ? 'registry-1.docker.io' : registry;
}
