#!/bin/bash
# Container health check: GET /v2/health/ready on the REST port, healthy only on HTTP 200.
# Plain bash (/dev/tcp) so the runtime images need neither curl nor wget.
# Usage: sparseinference-healthcheck [path]   (default /v2/health/ready)
set -u
port="${SparseInference__Ports__Rest:-8000}"
path="${1:-/v2/health/ready}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "${path}" "${port}" >&3
IFS=' ' read -r -t 5 _ status _ <&3 || exit 1
exec 3<&-
[ "${status}" = "200" ]
