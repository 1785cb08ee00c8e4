// Multi-part dumps across many datagrams, pipelined requests, and change notifications.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { Netlink, type NetlinkWatcher, type NetlinkWatcherEvents } from '../../../netlink/index.js';
import { ipJson, tempNetns } from './netns.js';

test('200 links created in parallel all come back in one dump', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  const names = Array.from({ length: 200 }, (_, i) => `br${String(i).padStart(3, '0')}`);
  // More requests than the in-flight window: the rest queue behind it.
  await Promise.all(names.map((name, i) => nl.createLink({ kind: 'bridge', name, mtu: 1000 + i })));

  const links = await nl.listLinks();
  assert.deepEqual(links.map((l) => l.name).filter((n) => n !== 'lo').sort(), names);
  for (const l of links) if (l.name !== 'lo') assert.equal(l.mtu, 1000 + Number(l.name.slice(2)), l.name);
  const seenByIp = await ipJson<{ ifname: string }>(ns, 'link', 'show');
  assert.equal(seenByIp.length, 201);
  // Dumps and requests interleave on one socket without mixing up their answers.
  const [again, one, addrs] = await Promise.all([nl.listLinks(), nl.getLink('br199'), nl.listAddresses()]);
  assert.equal(again.length, 201);
  assert.equal(one.mtu, 1199);
  assert.ok(Array.isArray(addrs));
});

test('notifications arrive for links, addresses and neighbours', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  const watcher = nl.watch(['link', 'ipv4-address', 'neighbour']);
  t.after(() => watcher.close());

  const linkEvents: NetlinkWatcherEvents['link'][0][] = [];
  watcher.on('link', (e) => linkEvents.push(e));
  const created = waitFor(watcher, 'link', (e) => e.action === 'new' && e.link.name === 'watched0');
  await nl.createLink({ kind: 'bridge', name: 'watched0' });
  const ev = await created;
  assert.equal(ev.link.kind, 'bridge');

  const addr = waitFor(watcher, 'address', (e) => e.action === 'new' && e.address.cidr === '10.66.0.1/24');
  await nl.addAddress('watched0', '10.66.0.1/24');
  assert.equal((await addr).address.index, ev.link.index);

  const neigh = waitFor(watcher, 'neighbour', (e) => e.action === 'new' && e.neighbour.ip === '10.66.0.9');
  await nl.addNeighbour('watched0', '10.66.0.9', '02:00:00:00:66:09');
  assert.equal((await neigh).neighbour.mac, '02:00:00:00:66:09');

  const deleted = waitFor(watcher, 'link', (e) => e.action === 'del' && e.link.name === 'watched0');
  await nl.deleteLink('watched0');
  assert.equal((await deleted).link.index, ev.link.index);
  assert.ok(linkEvents.every((e) => e.link.name === 'watched0'), 'only this namespace\'s links are seen');
});

test('a watcher sees nothing from other namespaces', { timeout: 60_000 }, async (t) => {
  const quiet = await tempNetns(t);
  const busy = await tempNetns(t);
  const q = await Netlink.open({ netns: quiet });
  const b = await Netlink.open({ netns: busy });
  t.after(() => { q.close(); b.close(); });
  const watcher = q.watch(['link']);
  t.after(() => watcher.close());
  const seen: string[] = [];
  watcher.on('link', (e) => seen.push(e.link.name));
  await b.createLink({ kind: 'bridge', name: 'elsewhere0' });
  // A change in the quiet namespace after it acts as the barrier: once it is seen, anything from
  // the busy one would have been seen before it.
  const marker = waitFor(watcher, 'link', (e) => e.link.name === 'marker0');
  await q.createLink({ kind: 'bridge', name: 'marker0' });
  await marker;
  assert.deepEqual([...new Set(seen)], ['marker0']);
});

function waitFor<K extends 'link' | 'address' | 'neighbour'>(
  watcher: NetlinkWatcher, event: K, match: (e: NetlinkWatcherEvents[K][0]) => boolean,
): Promise<NetlinkWatcherEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const onEvent = (e: NetlinkWatcherEvents[K][0]) => {
      if (!match(e)) return;
      watcher.off(event, onEvent as never);
      resolve(e);
    };
    watcher.on(event, onEvent as never);
    void once(watcher, 'error').then(([err]) => reject(err as Error), () => undefined);
  });
}

test('a watcher that falls behind reports lost notifications instead of silently missing them', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  const watcher = nl.watch(['link'], { receiveBuffer: 1 }); // the kernel's minimum, a few messages
  t.after(() => watcher.close());
  const lost = once(watcher, 'error');
  // spawnSync blocks our event loop while `ip` makes changes, so nothing drains the socket.
  const batch = Array.from({ length: 40 }, (_, i) => `link add flood${i} type bridge`).join('\n');
  const r = spawnSync('ip', ['-n', ns, '-batch', '-'], { input: batch });
  assert.equal(r.status, 0, String(r.stderr));
  const [err] = (await lost) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ENOBUFS');
  assert.match(err.message, /notifications lost/);
  // ...and keeps listening afterwards.
  const after = waitFor(watcher, 'link', (e) => e.action === 'new' && e.link.name === 'after0');
  await nl.createLink({ kind: 'bridge', name: 'after0' });
  await after;
});
