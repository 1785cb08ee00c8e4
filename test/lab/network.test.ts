// Networks across real hosts (issue #7), one lab: h1 (manager) h2 h3, tasks pinned by hostname.
//   - overlay with the default pool: test and test1 on h2, test2 on h3 ping each other by name,
//     their addresses in a 10.0.x.0/24 of the pool
//   - overlay --subnet 172.16.0.0/24 --gateway 172.16.0.254: tasks on h2 and h3 ping each other by
//     name, addresses inside the subnet, none of them (nor a VIP) the gateway's
//   - macvlan on the lab underlay (parent eth0): tasks on h2 and h3 ping each other and the other
//     host by IP, and by name (answered on 127.0.0.11 inside the task: it shares no interface
//     with its host)
//   - bridge with a host-mode published port: another host fetches from the task's host address,
//     the host itself from 127.0.0.1; `service ps` shows the port, and for a port published
//     without a number the one the agent chose (which answers)
//   - the gateway bridge keeps its MAC address when a port with a lower one joins
//   - h3's shoald SIGKILLed and its link down: its endpoints leave h1's and h2's peer tables (FDB
//     of the overlay sandbox, the KV) within the session TTL; its task runs on h2 and is reached
//     by name again, across hosts
//   - h3 back, every service and network removed: no namespace, link, nftables rule or KV key of
//     them is left on any host
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab } from '../../deploy/labkit/lab.js';
import { formCluster, killDaemon, startDaemon } from '../../deploy/labkit/cluster.js';
import { contains, parseCidr, parseIp } from '../../agent/network/ipv4.js';
import { testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';
import { agentNamespaces, execInTask, idle, kvKeys, labImage, links, pings, running, shoal, taskAddress, waitForPing, waitForTasks } from './probes.js';

/** The agents' peer-table session TTL (agent/network/attacher.ts, sessionTtlMs default). */
const PEER_SESSION_TTL_MS = 15_000;

test('overlay, macvlan and bridge networks across hosts; a host lost; nothing left after removal', async (t) => {
  const lab = new Lab(testLabName('net'));
  t.after(async () => {
    await lab.down();
  });
  const { layout } = await lab.up({ hosts: 3, registry: true });
  await formCluster(lab, 1, () => {});
  const image = labImage(lab);
  const addr = (h: string) => lab.host(h).address;
  const network = (name: string, ...flags: string[]) => shoal(lab, 'h1', ['network', 'create', ...flags, name]).trim();
  const service = (name: string, net: string, constraint: string, ...rest: string[]) =>
    shoal(lab, 'h1', ['service', 'create', '--detach', '--name', name, '--network', net, '--constraint', constraint, ...(rest.length ? rest : [image, ...idle])]);
  const onHost = (h: string) => `node.hostname==${h}`;
  const inspect = <T>(kind: 'network' | 'service', name: string): T => (JSON.parse(shoal(lab, 'h1', [kind, 'inspect', name])) as T[])[0]!;
  /** The one running task of `name`, once it runs. */
  const taskOf = (name: string, timeoutMs = 30_000) => waitFor(`${name} to run`, () => running(lab, name)[0], { timeoutMs });

  // ---- Networks and their services -------------------------------------------------------------
  const ids: Record<string, string> = {};
  ids.overlay_net01 = network('overlay_net01', '--driver', 'overlay');
  ids.ovs = network('ovs', '--driver', 'overlay', '--subnet', '172.16.0.0/24', '--gateway', '172.16.0.254');
  // macvlan shares the underlay's subnet: tasks take addresses from a range no lab host uses.
  const base = layout.subnet.replace(/\.0\/24$/, '');
  assert.notEqual(base, layout.subnet, `the lab subnet ${layout.subnet} is a /24`);
  ids.mv = network('mv', '--driver', 'macvlan', '-o', 'parent=eth0', '--subnet', layout.subnet, '--ip-range', `${base}.128/26`, '--gateway', addr('h1'));
  ids.br1 = network('br1', '--driver', 'bridge');
  service('test', 'overlay_net01', onHost('h2'));
  service('test1', 'overlay_net01', onHost('h2'));
  service('test2', 'overlay_net01', onHost('h3'));
  service('watcher', 'overlay_net01', onHost('h1'));
  service('s1', 'ovs', onHost('h2'));
  service('s2', 'ovs', onHost('h3'));
  service('m1', 'mv', onHost('h2'));
  service('m2', 'mv', onHost('h3'));
  service('www', 'br1', onHost('h2'), '--publish', 'published=8080,target=80,mode=host', image, 'sh', '-c', 'mkdir -p /www && echo served-by-www > /www/index.html && exec httpd -f -p 80 -h /www');
  service('www0', 'br1', onHost('h3'), '--publish', 'target=80,mode=host', image, 'sh', '-c', 'mkdir -p /www && echo served-by-www0 > /www/index.html && exec httpd -f -p 80 -h /www');
  const task = await waitForTasks(lab, ['test', 'test1', 'test2', 'watcher', 's1', 's2', 'm1', 'm2', 'www', 'www0']);

  await t.test('overlay, default pool: test pings test1 (same host) and test2 (h3) by name', async () => {
    const subnet = inspect<{ IPAM: { Config: { Subnet: string }[] } }>('network', 'overlay_net01').IPAM.Config[0]!.Subnet;
    assert.match(subnet, /^10\.0\.\d+\.0\/24$/, 'a /24 of the default pool 10.0.0.0/8');
    const prefix = parseCidr(subnet)!.prefix;
    for (const name of ['test', 'test1', 'test2']) {
      const ip = await taskAddress(lab, task[name]!);
      assert.ok(contains(prefix, parseIp(ip)!), `${name}'s address ${ip} is in ${subnet}`);
    }
    for (const target of ['test1', 'test2']) {
      // The first ping across hosts may race the peer table's arrival on a task just started.
      await waitForPing(lab, task.test!, target);
    }
  });

  await t.test('overlay --subnet 172.16.0.0/24 --gateway .254: names across hosts, nobody on .254', async () => {
    const net = inspect<{ IPAM: { Config: { Subnet: string; Gateway: string }[] } }>('network', 'ovs');
    assert.deepEqual(net.IPAM.Config.map((c) => [c.Subnet, c.Gateway]), [['172.16.0.0/24', '172.16.0.254']]);
    const prefix = parseCidr('172.16.0.0/24')!.prefix;
    const used: string[] = [];
    for (const name of ['s1', 's2']) {
      used.push(await taskAddress(lab, task[name]!));
      const vips = inspect<{ Endpoint: { VirtualIPs: { Addr: string }[] } }>('service', name).Endpoint.VirtualIPs.map((v) => v.Addr.split('/')[0]!);
      used.push(...vips);
    }
    for (const ip of used) assert.ok(contains(prefix, parseIp(ip)!), `${ip} is inside 172.16.0.0/24`);
    assert.ok(!used.includes('172.16.0.254'), `nobody holds the gateway's address: ${used.join(' ')}`);
    await waitForPing(lab, task.s1!, 's2');
    await waitForPing(lab, task.s2!, 's1');
  });

  await t.test('macvlan on eth0: tasks ping each other and the other host by IP, each other by name (127.0.0.11)', async () => {
    const range = parseCidr(`${base}.128/26`)!.prefix;
    const m1 = await taskAddress(lab, task.m1!);
    const m2 = await taskAddress(lab, task.m2!);
    for (const ip of [m1, m2]) assert.ok(contains(range, parseIp(ip)!), `${ip} is in the --ip-range ${base}.128/26`);
    assert.ok(await pings(lab, task.m1!, m2), `m1 (h2) pings m2 at ${m2}`);
    assert.ok(await pings(lab, task.m2!, m1), `m2 (h3) pings m1 at ${m1}`);
    assert.ok(await pings(lab, task.m1!, addr('h3')), `m1 (h2) pings h3 at ${addr('h3')}`);
    assert.ok(await pings(lab, task.m2!, addr('h2')), `m2 (h3) pings h2 at ${addr('h2')}`);
    const resolv = await execInTask(lab, task.m1!, ['cat', '/etc/resolv.conf']);
    assert.match(resolv.stdout, /^nameserver 127\.0\.0\.11$/m, 'a macvlan-only task resolves inside its namespace');
    await waitForPing(lab, task.m1!, 'tasks.m2');
    await waitForPing(lab, task.m2!, 'tasks.m1');
  });

  await t.test('bridge, published=8080 mode=host: another host fetches from the task’s host, the host itself from 127.0.0.1; service ps shows the ports, a chosen one too', async () => {
    const fetchFrom = (h: string, url: string) => waitFor(`${h} to fetch ${url}`, async () => {
      const r = await lab.exec(h, ['node', '-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
      return r.code === 0 ? r.stdout : null;
    }, { timeoutMs: 10_000 });
    assert.equal(await fetchFrom('h3', `http://${addr('h2')}:8080/`), 'served-by-www\n');
    assert.equal(await fetchFrom('h2', 'http://127.0.0.1:8080/'), 'served-by-www\n', 'h2 itself, on its loopback');
    const ports = (name: string) => shoal(lab, 'h1', ['service', 'ps', name, '--format', '{{.Ports}}']).trim();
    assert.equal(ports('www'), '*:8080->80/tcp');
    const chosen = /^\*:(\d+)->80\/tcp$/.exec(ports('www0'));
    assert.ok(chosen, `service ps www0 shows the port the agent chose: ${ports('www0')}`);
    const port = Number(chosen[1]);
    assert.ok(port >= 30000 && port <= 32767, `${port} is in 30000-32767`);
    assert.equal(await fetchFrom('h2', `http://${addr('h3')}:${port}/`), 'served-by-www0\n');
  });

  await t.test('the gateway bridge keeps its MAC when a port with a lower one joins', async () => {
    // A bridge left to itself takes its lowest port's MAC: tasks that cached the old one (their
    // DNS server, their gateway) were cut off until their neighbour entry expired.
    const macOf = async (link: string) => /link\/ether ([0-9a-f:]+)/.exec((await lab.exec('h2', ['ip', '-o', 'link', 'show', 'dev', link])).stdout)?.[1];
    const before = await macOf('shoal_gwbridge');
    assert.ok(before, 'h2 has a gateway bridge');
    const port = (await links(lab, 'h2')).find((l) => l.startsWith('shgw'));
    assert.ok(port, 'a task’s port on the gateway bridge');
    const r = await lab.exec('h2', ['ip', 'link', 'set', 'dev', port, 'address', '00:00:00:00:00:01']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await macOf('shoal_gwbridge'), before);
    await waitForPing(lab, task.test!, 'test2');
  });

  await t.test('h3 killed and cut off: its endpoints leave the peer tables, its task is reached by name again', async () => {
    // Worker-only and created last: the spread puts it on h3, the worker running fewer tasks.
    service('roam', 'overlay_net01', 'node.role==worker');
    const before = await taskOf('roam');
    assert.equal(before.node, 'h3', 'roam starts on h3');
    await waitForPing(lab, task.watcher!, 'roam');
    const h3Tasks = [task.test2!.id, before.id];
    const sandbox = async (h: string) => (await agentNamespaces(lab, h)).find((n) => n.includes('.ov-') && n.endsWith(ids.overlay_net01!.slice(0, 12).toLowerCase()));
    const fdbTo = async (h: string, vtep: string) => {
      const ns = await sandbox(h);
      assert.ok(ns, `${h} has a sandbox for overlay_net01`);
      const r = await lab.exec(h, ['bridge', '-n', ns, 'fdb', 'show']);
      return r.stdout.split('\n').filter((l) => l.includes(`dst ${vtep} `));
    };
    for (const h of ['h1', 'h2']) assert.ok((await fdbTo(h, addr('h3'))).length > 0, `${h} forwards to h3's endpoints before the kill`);

    const killedAt = Date.now();
    await killDaemon(lab, 'h3');
    const down = await lab.exec('h3', ['ip', 'link', 'set', 'eth0', 'down']);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('h3’s endpoints to leave the KV and the FDBs of h1 and h2', async () => {
      const keys = await kvKeys(lab, 'h1', `endpoints/${ids.overlay_net01}`);
      if (keys.some((k) => h3Tasks.some((id) => k.endsWith(`/${id}`)))) return false;
      return (await fdbTo('h1', addr('h3'))).length === 0 && (await fdbTo('h2', addr('h3'))).length === 0;
    }, { timeoutMs: PEER_SESSION_TTL_MS + 15_000 });
    const gone = Date.now() - killedAt;
    t.diagnostic(`h3's endpoints left the peer tables ${gone} ms after the kill (session TTL ${PEER_SESSION_TTL_MS} ms)`);

    const after = await waitFor('roam to run again, elsewhere', () => running(lab, 'roam').find((x) => x.node !== 'h3'));
    assert.equal(after.node, 'h2', 'the only other worker');
    // Looked up again: on a loaded machine a host may miss a heartbeat and have its tasks replaced.
    const now = await waitForTasks(lab, ['watcher', 'test']);
    await waitForPing(lab, now.watcher!, 'roam');
    await waitForPing(lab, now.test!, 'roam');
    // tasks.roam lists task addresses: only the new one is left.
    const newIp = await taskAddress(lab, after);
    const answers = async () => {
      const r = await execInTask(lab, now.watcher!, ['nslookup', 'tasks.roam']);
      // The server's own line ends in :53; answers are bare addresses.
      return [...r.stdout.matchAll(/^Address:\s+(\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]!);
    };
    assert.deepEqual(await answers(), [newIp], 'tasks.roam names only the new task');
  });

  await t.test('h3 back, everything removed: no namespace, link, rule or KV key of the networks left', async () => {
    assert.equal((await lab.exec('h3', ['ip', 'link', 'set', 'eth0', 'up'])).code, 0);
    await startDaemon(lab, 'h3');
    await waitFor('h3 Ready again', () => /^h3 Ready$/m.test(shoal(lab, 'h1', ['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])), { timeoutMs: 30_000 });
    shoal(lab, 'h1', ['service', 'rm', 'test', 'test1', 'test2', 'watcher', 's1', 's2', 'm1', 'm2', 'www', 'www0', 'roam']);
    await waitFor('every task of the removed services to be gone', () => shoal(lab, 'h1', ['service', 'ls', '-q']).trim() === '');
    // A network in use by tasks not yet stopped refuses removal: retry until they are gone.
    for (const name of Object.keys(ids)) {
      await waitFor(`network rm ${name}`, () => shoal(lab, 'h1', ['network', 'rm', name]).trim() === name, { timeoutMs: 30_000 });
    }
    const leftovers = async (h: string): Promise<string[]> => {
      const found: string[] = [];
      found.push(...(await agentNamespaces(lab, h)).map((n) => `netns ${n}`));
      const hostLinks = await links(lab, h);
      found.push(...hostLinks.filter((l) => !['lo', 'eth0', 'shoal_gwbridge'].includes(l)).map((l) => `link ${l}`));
      const rules = (await lab.exec(h, ['nft', 'list', 'ruleset'])).stdout;
      if (/\b8080\b/.test(rules)) found.push('nft rule for port 8080');
      if (/dport 3\d{4} /.test(rules)) found.push('nft rule for a port the agent chose');
      if (/172\.16\.0\./.test(rules)) found.push('nft rule for 172.16.0.0/24');
      for (const id of Object.values(ids)) if (rules.includes(`shl-${id.slice(0, 11).toLowerCase()}`)) found.push(`nft rule naming the bridge of ${id}`);
      return found;
    };
    let last = '';
    await waitFor(() => `every host clean (last: ${last})`, async () => {
      const per = await Promise.all(['h1', 'h2', 'h3'].map(async (h) => (await leftovers(h)).map((x) => `${h}: ${x}`)));
      last = per.flat().join('; ');
      return last === '';
    }, { timeoutMs: 30_000 });
    const keys = await kvKeys(lab, 'h1', '');
    const ofNetworks = keys.filter((k) => Object.values(ids).some((id) => k.includes(id)));
    assert.deepEqual(ofNetworks, [], 'no KV key names a removed network');
  });
});
