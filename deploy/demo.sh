#!/usr/bin/env bash
# The demo on a fresh machine: set-up, then a whole cluster in the lab (3 managers, 2 workers and a
# registry, each host a network namespace running its own shoald), a web service and a client that
# calls it by name over an overlay network across hosts, a scale-up, a rolling update, a drain.
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

say "An overlay network spanning the hosts"
shoal network create -d overlay appnet
shoal network ls

say "A web service: 3 busybox httpd replicas, each answering with its hostname"
shoal service create --name web --replicas 3 --network appnet --hostname '{{.Task.Name}}' --stop-grace-period 2s \
  "$image" sh -c 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'
shoal service ps web

say "A client on another host calls the service by name (DNS + VIP over VXLAN)"
shoal service create --name client --replicas 1 --network appnet --constraint node.role==worker \
  "$image" sh -c 'while true; do printf "GET / HTTP/1.0\r\n\r\n" | nc web 80 | tail -n1; sleep 1; done'
shoal service ps client
sleep 4
shoal service logs --tail 5 client

say "Scale the web service to 6: the new replicas spread over the hosts"
shoal service scale web=6
shoal service ps web --filter desired-state=running

say "A rolling update, two at a time, with its progress"
shoal service update --env-add VERSION=2 --update-parallelism 2 --update-delay 1s web
shoal service inspect --pretty web | sed -n '1,20p'

say "Drain h4: its tasks move to the other hosts"
shoal node update --availability drain h4
sleep 3
shoal service ps web --filter desired-state=running
shoal node ls

say "Done. The cluster is still up."
cat <<EOF
  Use it:        $lab cli h1 -- service ls          (any shoal command, on any host h1..h5)
  A host shell:  $lab exec h2 -- sh
  Tear it down:  $lab down --name $SHOAL_LAB
EOF
