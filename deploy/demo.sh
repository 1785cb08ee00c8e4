#!/usr/bin/env bash
# The demo on a fresh machine: set-up, then a whole cluster in the lab (3 managers, 2 workers and a
# registry, each host a network namespace running its own shoald), an example stack (a web service
# and a client that calls it by name over an overlay network across hosts), a scale-up, a rolling
# update, a drain.
# Narrated as it goes; it leaves the cluster up and says how to use it and tear it down.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
bash "$repo/deploy/setup.sh"
lab="$repo/deploy/lab"
export SHOAL_LAB=${SHOAL_LAB:-demo}
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
shoal() { echo "\$ shoal $*" >&2; "$lab" cli h1 -- "$@"; }

say "A lab of 5 hosts on a sealed underlay, a registry host, shoald on every host: h1-h3 managers, h4-h5 workers"
"$lab" down >/dev/null 2>&1 || true
"$lab" up --hosts 5 --managers 3 --registry
image=$("$lab" status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.registry?j.registry.image:"")})')
[ -n "$image" ] || image="198.18.0.254:5000/shoal/busybox:latest"

say "The nodes, as 'docker node ls' would show them"
until [ "$(shoal node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready)" = 5 ]; do sleep 0.5; done
shoal node ls

say "An example stack (deploy/stacks/example.yml): a web service of 3 busybox httpd replicas and a client
    that calls it by name over the stack's overlay network, once the replicas are healthy"
sed -n '/^services:/,$p' "$repo/deploy/stacks/example.yml"
export IMAGE="$image"
shoal stack deploy -c "$repo/deploy/stacks/example.yml" demo
shoal stack services demo

say "Where the tasks landed"
shoal stack ps demo

say "The client, on one host, calls 'web' on the others: DNS and a VIP over VXLAN"
sleep 3
shoal service logs --tail 6 demo_client

say "Scale the web service to 6: the new replicas spread over the hosts"
shoal service scale demo_web=6
shoal service ps demo_web --filter desired-state=running

say "A rolling update, two at a time, with its progress"
shoal service update --env-add VERSION=2 --update-parallelism 2 --update-delay 1s demo_web
# The updater marks the update completed once the last batch has passed its monitor period.
for _ in $(seq 30); do
  [ "$("$lab" cli h1 -- service inspect --format '{{.UpdateStatus.State}}' demo_web)" = completed ] && break
  sleep 1
done
shoal service inspect --format '{{.Spec.Name}}: update {{.UpdateStatus.State}}, env {{.Spec.TaskTemplate.ContainerSpec.Env}}' demo_web

say "Drain h4: its tasks move to the other hosts"
shoal node update --availability drain h4
sleep 5
shoal stack ps demo --filter desired-state=running
shoal node ls
shoal service logs --tail 3 demo_client

say "Done. The cluster is still up."
cat <<EOF
  Use it:        $lab cli h1 -- stack services demo   (any shoal command, on any host h1..h5)
  A host shell:  $lab exec h2 -- sh
  Tear it down:  $lab down --name $SHOAL_LAB
EOF
