// `--user` resolution the way Docker does it: names looked up in the container's own /etc/passwd
// and /etc/group (never the host's), numeric ids taken as they are, supplementary groups from
// /etc/group membership, HOME from the passwd entry.
import { readFile } from 'node:fs/promises';
import { resolveInRoot } from './rootpath.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

const NUMERIC = /^\d+$/;

/** Pure resolution against already-read passwd/group contents (unit-testable). */
export function resolveUserFrom(user: string, passwdText: string, groupText: string): ResolvedUser {
  const spec = user.trim() === '' ? '0' : user.trim();
  const [userPart, groupPart] = spec.split(':', 2) as [string, string | undefined];
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);

  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  const byName = passwd.find((p) => p.name === userPart);
  const byId = NUMERIC.test(userPart) ? passwd.find((p) => p.uid === Number(userPart)) : undefined;
  if (NUMERIC.test(userPart)) {
    uid = Number(userPart);
    if (byId) ({ gid, home, name } = byId);
  } else if (byName) {
    ({ uid, gid, home, name } = byName);
  } else {
    throw new Error(`unable to find user "${userPart}": no matching entry in the container's /etc/passwd`);
  }

  if (groupPart !== undefined && groupPart !== '') {
    if (NUMERIC.test(groupPart)) {
      gid = Number(groupPart);
    } else {
      const g = groups.find((e) => e.name === groupPart);
      if (!g) throw new Error(`unable to find group "${groupPart}": no matching entry in the container's /etc/group`);
      gid = g.gid;
    }
  }
  const additionalGids =
    name === undefined ? [] : [...new Set(groups.filter((g) => g.members.includes(name as string) && g.gid !== gid).map((g) => g.gid))];
  return { uid, gid, additionalGids, home };
}

async function readInRoot(rootfs: string, path: string): Promise<string> {
  try {
    return await readFile(await resolveInRoot(rootfs, path), 'utf8');
  } catch {
    return '';
  }
}

export async function resolveUser(rootfs: string, user: string): Promise<ResolvedUser> {
  const [passwd, group] = await Promise.all([readInRoot(rootfs, '/etc/passwd'), readInRoot(rootfs, '/etc/group')]);
  return resolveUserFrom(user, passwd, group);
}
