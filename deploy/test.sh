#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up (idempotent), then type-check, lint and every
# test. `.ci/run` runs exactly this.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
bash "$repo/deploy/setup.sh"
exec node "$repo/scripts/test.mjs" "$@"
