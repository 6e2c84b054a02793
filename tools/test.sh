#!/usr/bin/env bash
# The project's test command. Installs the real peers the tests talk to when they are missing (Prometheus,
# promtool, Python grpcio, kubectl, the manifest validators), then runs `dotnet test` with any arguments given.
# Tests that replay the SKAB data skip with instructions where it is absent, and fail where it is promised (CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/ci/install-peers.sh
bash deploy/ci/install-validators.sh
exec dotnet test "$@"
