import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveUser, resolveUserFrom } from '../../../agent/runtime/spec/user.js';
import { resolveInRoot } from '../../../agent/runtime/spec/rootpath.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbroken line\n';
const GROUP = 'root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:root\n';

test('a name resolves to its uid, primary gid, supplementary groups and home', () => {
  assert.deepEqual(resolveUserFrom('app', PASSWD, GROUP), { uid: 1000, gid: 1000, additionalGids: [50], home: '/home/app' });
});

test('empty means root; numeric ids need no passwd entry', () => {
  assert.deepEqual(resolveUserFrom('', PASSWD, GROUP), { uid: 0, gid: 0, additionalGids: [10], home: '/root' });
  assert.deepEqual(resolveUserFrom('4242:4343', PASSWD, GROUP), { uid: 4242, gid: 4343, additionalGids: [], home: '/' });
  assert.deepEqual(resolveUserFrom('1000', PASSWD, GROUP).gid, 1000);
});

test('user:group with a group name or number overrides the primary group', () => {
  assert.equal(resolveUserFrom('app:staff', PASSWD, GROUP).gid, 50);
  assert.deepEqual(resolveUserFrom('app:staff', PASSWD, GROUP).additionalGids, []);
  assert.equal(resolveUserFrom('root:7', PASSWD, GROUP).gid, 7);
});

test('unknown names are errors naming the value', () => {
  assert.throws(() => resolveUserFrom('ghost', PASSWD, GROUP), /unable to find user "ghost"/);
  assert.throws(() => resolveUserFrom('app:ghosts', PASSWD, GROUP), /unable to find group "ghosts"/);
});

test("names are looked up in the rootfs's files, never through a symlink out of it", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-user-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(dir, 'outside'));
  await writeFile(join(dir, 'outside', 'passwd'), 'evil:x:0:0::/:/bin/sh\n');
  // An absolute link and a ../ link that would both leave the root if followed on the host.
  await symlink('/../../outside/passwd', join(root, 'etc', 'passwd'));
  await symlink('../../../outside/group', join(root, 'etc', 'group'));
  assert.equal(await resolveInRoot(root, '/etc/passwd'), join(root, 'outside', 'passwd'));
  assert.equal(await resolveInRoot(root, '/etc/group'), join(root, 'outside', 'group'));
  await assert.rejects(resolveUser(root, 'evil'), /unable to find user "evil"/);
  await mkdir(join(root, 'outside'));
  await writeFile(join(root, 'outside', 'passwd'), 'inside:x:5:6::/in:/bin/sh\n');
  assert.deepEqual(await resolveUser(root, 'inside'), { uid: 5, gid: 6, additionalGids: [], home: '/in' });
});
