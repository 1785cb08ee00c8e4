// Loads the native addon (netlink/native/netlink.c) that gives Node NETLINK_ROUTE sockets.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** An open socket, owned by the addon. */
export type NativeSocket = { readonly __nativeSocket: unique symbol };

export interface NativeNetlink {
  /** Opens and binds a socket; netnsPath null means the caller's own namespace. */
  open(netnsPath: string | null, groups: number, rcvbuf: number, onDatagram: (data: Buffer | null, errno: number) => void): NativeSocket;
  portId(socket: NativeSocket): number;
  send(socket: NativeSocket, data: Buffer): void;
  ref(socket: NativeSocket, on: boolean): void;
  close(socket: NativeSocket): void;
  strerror(errno: number): string;
}

// npm puts its bundled node-gyp on PATH for package scripts, so the build is an npm script.
const BUILD_COMMAND = 'npm run build:native';

let loaded: NativeNetlink | undefined;

export function native(): NativeNetlink {
  if (loaded) return loaded;
  // From dist/netlink/native.js the addon is two levels up; from netlink/native.ts (run from
  // source) it is beside us.
  const candidates = ['../../netlink/native/build/Release/netlink.node', './native/build/Release/netlink.node'];
  const require = createRequire(import.meta.url);
  for (const rel of candidates) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) {
      loaded = require(path) as NativeNetlink;
      return loaded;
    }
  }
  throw new Error(`the netlink native addon is not built (looked for netlink/native/build/Release/netlink.node): run \`${BUILD_COMMAND}\` in the repository`);
}
