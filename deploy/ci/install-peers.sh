#!/usr/bin/env bash
# Installs, from the distribution (Debian/Ubuntu), the real peers the tests talk to when they are missing:
# Prometheus and promtool, Python's grpcio with its code generator, kubectl (kustomize), Node.js and npm (the
# manifest validators) and a Compose implementation. Runs apt-get as root, or through passwordless sudo; otherwise
# prints the command to run and fails. Safe to run repeatedly: it installs nothing when everything is there.
set -euo pipefail

need=()
command -v promtool >/dev/null || need+=(prometheus)
/usr/bin/python3 -c 'import grpc, grpc_tools, google.protobuf' 2>/dev/null || need+=(python3-grpcio python3-grpc-tools python3-protobuf)
command -v kubectl >/dev/null || need+=(kubectl)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "The tests need these Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
