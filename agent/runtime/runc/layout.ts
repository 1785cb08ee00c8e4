// Where a container's state lives under the runtime's root directory. Everything needed to
// re-attach after an agent restart is on disk here; nothing is kept only in memory.
//   <root>/runc/                     runc's state root (runc --root)
//   <root>/sockets/                  conmon attach sockets
//   <root>/volumes/<name>/_data      named local volumes
//   <root>/containers/<id>/          the OCI bundle and everything else of one container:
//      config.json meta.json conmon.pid container.pid exits/<id> ctr.log[.N] ctl
//      hosts hostname resolv.conf oom
import { join } from 'node:path';

export const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function validateId(id: string): void {
  if (!CONTAINER_ID.test(id)) {
    throw new Error(`invalid container id "${id}": use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit`);
  }
}

export class Layout {
  constructor(readonly root: string) {}

  get runcRoot(): string {
    return join(this.root, 'runc');
  }
  get socketDir(): string {
    return join(this.root, 'sockets');
  }
  get volumesDir(): string {
    return join(this.root, 'volumes');
  }
  get containersDir(): string {
    return join(this.root, 'containers');
  }

  container(id: string): ContainerPaths {
    const dir = join(this.containersDir, id);
    return {
      dir,
      config: join(dir, 'config.json'),
      meta: join(dir, 'meta.json'),
      conmonPid: join(dir, 'conmon.pid'),
      containerPid: join(dir, 'container.pid'),
      exitDir: join(dir, 'exits'),
      exitFile: join(dir, 'exits', id),
      log: join(dir, 'ctr.log'),
      ctl: join(dir, 'ctl'),
      hosts: join(dir, 'hosts'),
      hostname: join(dir, 'hostname'),
      resolvConf: join(dir, 'resolv.conf'),
      oom: join(dir, 'oom'),
    };
  }
}

export interface ContainerPaths {
  dir: string;
  config: string;
  meta: string;
  conmonPid: string;
  containerPid: string;
  exitDir: string;
  exitFile: string;
  log: string;
  ctl: string;
  hosts: string;
  hostname: string;
  resolvConf: string;
  /** conmon creates this (in its working directory, the bundle) when the cgroup sees an OOM kill. */
  oom: string;
}
