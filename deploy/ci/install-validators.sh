#!/usr/bin/env bash
# Installs what tests/SparseInference.Deploy.Tests needs to validate the deployment files offline:
# the npm validators pinned in deploy/ci/package-lock.json, after install-peers.sh has brought kubectl
# (kustomize), promtool, node/npm and a Compose implementation from the distribution. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")"

bash install-peers.sh

# Reinstall only when the lock file changed since the last install.
if ! cmp -s package-lock.json node_modules/.installed-from-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-from-lock
fi
