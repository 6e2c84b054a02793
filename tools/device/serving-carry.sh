#!/usr/bin/env bash
# On the machine with the SDK, from the repository root: self-contained linux-x64 publishes of the server, the load
# generator and the benchmarks, packed as CARRY/{server,loadgen,bench}.tar.xz for tools/device/serving-split.sh on a
# machine without the SDK (the GPU machine's host). CARRY defaults to .devicecarry/serving.
set -euo pipefail
CARRY=${CARRY:-.devicecarry/serving}
mkdir -p "$CARRY" publish
for entry in server:src/SparseInference.Server loadgen:tools/SparseInference.LoadGen bench:benchmarks/SparseInference.Benchmarks; do
  name=${entry%%:*} project=${entry#*:}
  rm -rf "publish/$name"
  # Partial trimming keeps the application's own assemblies whole (configuration binding, reflection in tests).
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true -p:TrimMode=partial \
    -p:SuppressTrimAnalysisWarnings=true -v q -nologo -o "publish/$name"
  tar -C publish -cJf "$CARRY/$name.tar.xz" "$name"
done
ls -l "$CARRY"
