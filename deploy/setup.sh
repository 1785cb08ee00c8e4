#!/usr/bin/env bash
# Installs everything shoal needs on a Debian machine, then builds it. Idempotent: a second run
# checks and skips what is already there. Needs root (apt, /usr/local/bin); no standard input.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$repo"
log() { printf '[setup] %s\n' "$*"; }

# Debian packages: the container runtime and its monitor, the network tools the lab uses, the
# base of the test image, and the real servers the tests run against.
packages=(runc conmon iproute2 iputils-ping openssl nftables busybox-static redis-server docker-registry skopeo util-linux procps kmod)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts may try to start services (redis, registry); tests run their own instances.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# npm ci only when the lock file changed since the last install: it wipes node_modules each time.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.shoal-lock-hash || "$(cat node_modules/.shoal-lock-hash)" != "$lock_hash" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.shoal-lock-hash
else
  log "node_modules up to date"
fi

log "building (native netlink addon, protos, TypeScript)"
npm run --silent build
log "building the busybox:latest test image"
npm run --silent build:image >/dev/null

ln -sf "$repo/bin/shoal" /usr/local/bin/shoal
ln -sf "$repo/bin/shoald" /usr/local/bin/shoald
log "shoal and shoald are on PATH ($(shoal --version))"
