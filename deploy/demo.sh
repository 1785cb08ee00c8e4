#!/usr/bin/env bash
# The demo on a fresh machine: set-up, then a lab of hosts, narrated. Later issues extend it to a
# whole cluster with a stack deployed on it.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
bash "$repo/deploy/setup.sh"
lab="$repo/deploy/lab"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Bringing up a lab of 3 hosts (network namespaces on a sealed underlay)"
"$lab" up --hosts 3
"$lab" status
say "h1 reaches h3 across the lab underlay"
h3=$("$lab" status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).hosts.find(h=>h.name==="h3").address))')
"$lab" exec h1 -- ping -c2 -W1 "$h3"
say "...and nothing else: the lab is sealed (no route out)"
"$lab" exec h1 -- ip route get 192.0.2.1 || echo "(no route: as it should be)"
say "Each host has its own hostname"
for h in h1 h2 h3; do "$lab" exec "$h" -- hostname; done
say "Done. The lab is still up: try '$lab exec h2 -- ip addr'. Tear it down with '$lab down'."
