#!/usr/bin/env bash
# Store a GPU run's files (scripts/gpu-run.sh) under results/perf/<device>/, named by date:
#   scripts/perf-commit.sh FOLDER        then review and `git add results/perf && git commit`
set -euo pipefail
src=${1:?usage: scripts/perf-commit.sh FOLDER (where the GPU run files came back)}
json="$src/benchmarks.json"
[[ -f $json ]] || { echo "error: $json not found; run scripts/gpu-run.sh bench first" >&2; exit 2; }
device=$(python3 - "$json" <<'PY'
import json, re, sys
benchmarks = json.load(open(sys.argv[1]))["benchmarks"]
name = next((b["extra_info"]["device"] for b in benchmarks if b["extra_info"].get("device")), "unknown")
print(re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower())
PY
)
stamp=$(date -u +%Y%m%d)
dest="results/perf/$device"
mkdir -p "$dest"
for f in "$src"/*; do
  base=$(basename "$f")
  cp "$f" "$dest/$stamp-$base"
done
echo "stored in $dest:"; ls "$dest"
