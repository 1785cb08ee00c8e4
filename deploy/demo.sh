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
h3=$("$lab" status --format '{{.Address}}' h3 2>/dev/null || echo 198.18.0.3)
"$lab" exec h1 -- ping -c2 -W1 "$h3"
say "...and nothing else: the lab is sealed (no route out)"
"$lab" exec h1 -- ip route get 192.0.2.1 || true
say "Each host has its own hostname"
for h in h1 h2 h3; do "$lab" exec "$h" -- hostname; done
say "Done. The lab is still up: try '$lab exec h2 -- ip addr'. Tear it down with '$lab down'."
