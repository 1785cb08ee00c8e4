// The scheduler's decisions as a specification, one scenario a rule (format: scenario.ts).
import { describe } from 'node:test';
import { scenario } from './scenario.js';

describe('spread strategy', () => {
  scenario(
    'six tasks over three nodes go two to each',
    `
    node n1
    node n2
    node n3
    service web x6
    ----
    n1: web=2
    n2: web=2
    n3: web=2
    `,
  );

  scenario(
    'a node with fewer tasks of the service wins, even with more tasks in all',
    `
    node n1
    node n2
    running web on n1
    running other on n2 x5
    service web x1
    ----
    n1: -
    n2: web=1
    `,
  );

  scenario(
    'between nodes with as many tasks of the service, the one with fewer tasks in all wins',
    `
    node n1
    node n2
    node n3
    running other on n1 x2
    running other on n2
    service web x2
    ----
    n1: -
    n2: web=1
    n3: web=1
    `,
  );

  scenario(
    'a batch evens out existing imbalance before spreading',
    `
    node n1
    node n2
    node n3
    running web on n1 x3
    service web x5
    ----
    n1: -
    n2: web=3
    n3: web=2
    `,
  );

  scenario(
    'ties go to the smallest node id, so decisions are reproducible',
    `
    node n2
    node n1
    service web x1
    ----
    n2: -
    n1: web=1
    `,
  );

  scenario(
    'tasks being shut down do not count for spreading',
    `
    node n1
    node n2
    running web on n1 x2 desired=shutdown
    running web on n2
    service web x1
    ----
    n1: web=1
    n2: -
    `,
  );

  scenario(
    'services are placed in groups, each spread on its own',
    `
    node n1
    node n2
    service api x2
    service web x4
    ----
    n1: api=1 web=2
    n2: api=1 web=2
    `,
  );
});

describe('filter: ready', () => {
  scenario(
    'nodes that are down, disconnected or unknown take no tasks',
    `
    node n1
    node n2 state=down
    node n3 state=disconnected
    node n4 state=unknown
    service web x3
    ----
    n1: web=3
    n2: -
    n3: -
    n4: -
    `,
  );

  scenario(
    'with no node at all the reason is plain',
    `
    service web x2
    ----
    web x2: no suitable node
    `,
  );
});

describe('filter: availability', () => {
  scenario(
    'drained and paused nodes take no new tasks',
    `
    node n1 availability=drain
    node n2 availability=pause
    node n3
    service web x2
    ----
    n1: -
    n2: -
    n3: web=2
    `,
  );

  scenario(
    'the reason counts nodes per failing filter, the most common first, the first failing filter per node',
    `
    node n1 state=down availability=drain
    node n2 state=unknown
    node n3 availability=drain
    node n4 availability=pause
    node n5 availability=pause
    service web x2
    ----
    n1: -
    n2: -
    n3: -
    n4: -
    n5: -
    web x2: no suitable node (3 nodes not available for new tasks; 2 nodes not ready)
    `,
  );
});

describe('filter: resources', () => {
  scenario(
    "Docker's example: insufficient memory on 3 nodes, 2 not available",
    `
    node n1 mem=1G
    node n2 mem=1G
    node n3 mem=1G
    node n4 mem=8G availability=drain
    node n5 mem=8G availability=pause
    service web x1 mem=2G
    ----
    n1: -
    n2: -
    n3: -
    n4: -
    n5: -
    web x1: no suitable node (insufficient memory on 3 nodes; 2 nodes not available for new tasks)
    `,
  );

  scenario(
    'reservations fill nodes; the reason names the resource that ran out on each node',
    `
    node n1 cpu=2 mem=1G
    node n2 cpu=2 mem=1G
    node n3 cpu=1 mem=4G
    service web x6 cpu=1 mem=512M
    ----
    n1: web=2
    n2: web=2
    n3: web=1
    web x1: no suitable node (insufficient memory on 2 nodes; insufficient cpu on 1 node)
    `,
  );

  scenario(
    'live tasks hold their reservations, ended tasks release them, tasks being shut down still hold them',
    `
    node n1 mem=1G
    node n2 mem=1G
    node n3 mem=1G
    running db on n1 mem=768M
    running db on n2 mem=768M state=complete
    running db on n3 mem=768M desired=shutdown
    service web x2 mem=512M
    ----
    n1: -
    n2: web=2
    n3: -
    `,
  );

  scenario(
    'tasks without reservations fit anywhere, even on nodes that report no resources',
    `
    node n1
    running db on n1 mem=1G
    service web x1
    ----
    n1: web=1
    `,
  );

  scenario(
    'generic resources are counted like CPU and memory',
    `
    node n1 gpu=2
    node n2
    running old on n1 gpu=1 state=failed
    service train x3 gpu=1
    ----
    n1: train=2
    n2: -
    train x1: no suitable node (insufficient gpu on 2 nodes)
    `,
  );
});

describe('filter: constraints', () => {
  scenario(
    'node labels, equal',
    `
    node n1 label:tier=web
    node n2 label:tier=db
    node n3
    service web x4 constraint=node.labels.tier==web
    ----
    n1: web=4
    n2: -
    n3: -
    `,
  );

  scenario(
    'node labels, not equal: nodes without the label match',
    `
    node n1 label:tier=web
    node n2 label:tier=db
    node n3
    service web x4 constraint=node.labels.tier!=web
    ----
    n1: -
    n2: web=2
    n3: web=2
    `,
  );

  scenario(
    'values compare without case; several constraints must all hold',
    `
    node n1 label:tier=WEB role=manager
    node n2 label:tier=web
    node n3 label:tier=web role=manager
    service web x2 constraint=node.labels.tier==web constraint=node.role==manager
    ----
    n1: web=1
    n2: -
    n3: web=1
    `,
  );

  scenario(
    'node id, hostname, platform and engine labels',
    `
    node n1 hostname=alpha
    node n2 hostname=beta arch=arm64 engine:disk=ssd
    node n3 hostname=gamma os=windows
    service a x1 constraint=node.id==n3
    service b x1 constraint=node.hostname==beta
    service c x1 constraint=node.platform.arch==arm64
    service d x1 constraint=node.platform.os==windows
    service e x1 constraint=engine.labels.disk==ssd
    service f x2 constraint=node.role==worker constraint=node.hostname!=alpha
    ----
    n1: -
    n2: b=1 c=1 e=1 f=1
    n3: a=1 d=1 f=1
    `,
  );

  scenario(
    'unsatisfiable constraints are explained; unknown keys never match',
    `
    node n1 label:tier=db
    node n2
    node n3 state=down
    service web x1 constraint=node.labels.tier==web
    service odd x1 constraint=node.colour!=red
    ----
    n1: -
    n2: -
    n3: -
    odd x1: no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not ready)
    web x1: no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not ready)
    `,
  );

  scenario(
    'a constraint that does not parse keeps the tasks waiting, saying why',
    `
    node n1
    service web x2 constraint=node.labels.tier>web
    ----
    n1: -
    web x2: no suitable node (invalid constraint "node.labels.tier>web": constraint expected one operator from ==, !=)
    `,
  );
});

describe('filter: platform', () => {
  scenario(
    'the node must run one of the platforms asked for; x86_64 is amd64',
    `
    node n1 os=linux arch=x86_64
    node n2 os=linux arch=arm64
    node n3 os=windows arch=amd64
    service web x2 platform=linux/amd64
    service any x3 platform=linux/
    ----
    n1: any=2 web=2
    n2: any=1
    n3: -
    `,
  );

  scenario(
    'no matching platform',
    `
    node n1 arch=amd64
    node n2 arch=arm64
    service web x1 platform=linux/s390x
    ----
    n1: -
    n2: -
    web x1: no suitable node (unsupported platform on 2 nodes)
    `,
  );
});

describe('filter: max replicas per node', () => {
  scenario(
    'at most N tasks of the service on a node, counting those already there',
    `
    node n1
    node n2
    node n3
    running web on n1 x2
    service web x5 max-per-node=2
    ----
    n1: -
    n2: web=2
    n3: web=2
    web x1: no suitable node (max replicas per node limit exceeded on 3 nodes)
    `,
  );
});

describe('filter: host-mode ports', () => {
  scenario(
    'a host port in use on a node keeps tasks publishing it away, including tasks of the same batch',
    `
    node n1
    node n2
    node n3
    running other on n1 port=80/tcp
    service web x3 port=80/tcp
    ----
    n1: -
    n2: web=1
    n3: web=1
    web x1: no suitable node (host-mode port already in use on 3 nodes)
    `,
  );

  scenario(
    'another protocol or an ended task does not conflict',
    `
    node n1
    node n2
    running dns on n1 port=53/udp
    running old on n2 port=53/tcp state=shutdown
    service web x2 port=53/tcp
    ----
    n1: web=1
    n2: web=1
    `,
  );
});

describe('placement preferences', () => {
  scenario(
    'tasks split evenly across zones first, then across nodes: 1 node in zone a, 3 in zone b',
    `
    node a1 label:zone=a
    node b1 label:zone=b
    node b2 label:zone=b
    node b3 label:zone=b
    service web x6 pref=node.labels.zone
    ----
    a1: web=3
    b1: web=1
    b2: web=1
    b3: web=1
    `,
  );

  scenario(
    'nodes without the label form a group of their own',
    `
    node a1 label:zone=a
    node b1 label:zone=b
    node x1
    node x2
    service web x6 pref=node.labels.zone
    ----
    a1: web=2
    b1: web=2
    x1: web=1
    x2: web=1
    `,
  );

  scenario(
    "the service's existing tasks count in their zone",
    `
    node a1 label:zone=a
    node b1 label:zone=b
    node b2 label:zone=b
    running web on a1 x2
    service web x4 pref=node.labels.zone
    ----
    a1: web=1
    b1: web=2
    b2: web=1
    `,
  );

  scenario(
    'a zone without room gives its share to the others',
    `
    node a1 label:zone=a mem=1G
    node b1 label:zone=b mem=8G
    node b2 label:zone=b mem=8G
    service web x6 mem=512M pref=node.labels.zone
    ----
    a1: web=2
    b1: web=2
    b2: web=2
    `,
  );

  scenario(
    'a zone where no node passes the filters gets nothing',
    `
    node a1 label:zone=a label:tier=db
    node b1 label:zone=b label:tier=web
    node b2 label:zone=b label:tier=web
    service web x4 constraint=node.labels.tier==web pref=node.labels.zone
    ----
    a1: -
    b1: web=2
    b2: web=2
    `,
  );

  scenario(
    'preferences nest, outermost first',
    `
    node n1 label:dc=east label:rack=r1
    node n2 label:dc=east label:rack=r2
    node n3 label:dc=west label:rack=r1
    node n4 label:dc=west label:rack=r1
    node n5 label:dc=west label:rack=r2
    service web x8 pref=node.labels.dc pref=node.labels.rack
    ----
    n1: web=2
    n2: web=2
    n3: web=1
    n4: web=1
    n5: web=2
    `,
  );

  scenario(
    'engine labels spread too',
    `
    node n1 engine:zone=a
    node n2 engine:zone=b
    node n3 engine:zone=b
    service web x4 pref=engine.labels.zone
    ----
    n1: web=2
    n2: web=1
    n3: web=1
    `,
  );
});

describe('preassigned tasks (global services)', () => {
  scenario(
    'a task the orchestrator put on a node is confirmed when it fits, and explained when not',
    `
    node n1
    node n2 mem=1G
    node n3 availability=drain
    global mon on n1
    global mon on n2 mem=2G
    global mon on n3
    ----
    n1: mon=1
    n2: -
    n3: -
    mon x1: insufficient memory on 1 node
    mon x1: 1 node not available for new tasks
    `,
  );
});
