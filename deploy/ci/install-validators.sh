#!/usr/bin/env bash
# Installs what tests/SparseInference.Deploy.Tests needs to validate the deployment files offline:
# the npm validators pinned in deploy/ci/package-lock.json, and from the distribution when missing:
# kubectl (kustomize), promtool, node/npm, and a Compose implementation (`docker compose` or
# `docker-compose`) for `config`. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v kubectl >/dev/null || need+=(kubectl)
command -v promtool >/dev/null || need+=(prometheus)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Reinstall only when the lock file changed since the last install.
if ! cmp -s package-lock.json node_modules/.installed-from-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-from-lock
fi
