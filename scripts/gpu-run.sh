#!/usr/bin/env bash
# The GPU checks and measurements, for one device call each (at most 10 minutes). Each
# part stops its own work (SIGINT: what finished is still written) SECONDS after it starts,
# so give the device call a timeout_s about 40 s longer (install, start-up, packing):
#
#   scripts/gpu-run.sh tests [SECONDS]   CUDA tests: pytest -m cuda (tests/test_cuda.py),
#                               engine checks first, every method's CUDA/CPU twin last (300)
#   scripts/gpu-run.sh bench [SECONDS]   benchmarks (tests/benchmarks), then `bench perf`'s
#                               table in the last 60 s (420)
#   scripts/gpu-run.sh all      both, with their defaults (only if one call has the time)
#   scripts/gpu-run.sh grid PROFILE SCENARIOS SEEDS [SECONDS]
#                               one chunk of a GPU grid (issue 10): `bench run` on
#                               results/<PROFILE>/, stopped after SECONDS (default 500) so
#                               the finished cells' records come back packed in
#                               $OUT/records-<profile>-<scenarios>-s<seeds>.tar.gz; unpack
#                               here with `tar -xzf FILE` from the repository root
#                               (records resume: a later chunk skips finished cells)
#   scripts/gpu-run.sh tune PROFILE [SECONDS]
#                               issue 14: `bench tune --profile PROFILE --write` for at most
#                               SECONDS (default 540), resuming the studies carried in
#                               .data/tune/PROFILE.db; the study file, the report
#                               (results/PROFILE/tune/) and, once every study is done, the
#                               tuned file come back in $OUT/tune-PROFILE.tar.gz: unpack
#                               with `tar -xzf FILE` in the repository root and carry .data
#                               again next time (gpu-prep with optuna and its dependencies)
#   scripts/gpu-run.sh scale PROFILE KS WINDOW
#                               issue 13: cells per hour with K cells sharing the GPU, for
#                               each K in KS (e.g. 1,2,4): Original and Retrain are trained
#                               once first, then each K runs the profile's grid for WINDOW
#                               seconds into its own folder; the cells finished in the
#                               window give cells/hour -> $OUT/scale.md
#
# Run from the repository root on the GPU host, after ../shared/tools/gpu-prep has put the
# wheels in .whl/ and the CIFAR-10 archive in .data/ (carry both). Results go to $OUT
# (the device tool's folder that comes back; results/perf/local elsewhere), at most
# 8 files: gpu-run-<part>.log, cuda-tests.xml, benchmarks.json, perf.md, perf-methods.md.
# To commit them: scripts/perf-commit.sh <folder the files came back in>.
set -uo pipefail
part=${1:-all}
out=${OUT:-results/perf/local}
mkdir -p "$out"
exec > >(tee "$out/gpu-run-$part.log") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 UNLEARN_BENCH_OFFLINE=1
# The cache (decoded data, Original/Retrain checkpoints, study files, the grid's records) sits
# in an ignored folder of the checkout, not in /tmp: the device keeps ignored folders between
# calls while the machine is warm, so a second call right after the first skips what the
# first trained. (.cache must not be carried: a carried path is replaced.)
export UNLEARN_BENCH_DATA=${UNLEARN_BENCH_DATA:-$PWD/.data} UNLEARN_BENCH_CACHE=${UNLEARN_BENCH_CACHE:-$PWD/.cache/unlearn-bench}
mkdir -p "$UNLEARN_BENCH_CACHE"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" || exit 1
status=0

seconds=300
[[ $part == tests && $# -ge 2 ]] && seconds=$2
if [[ $part == tests || $part == all ]]; then
  echo "== CUDA tests, at most ${seconds}s"
  # SIGINT, not SIGTERM: pytest then stops cleanly and still writes its summary and the XML
  timeout -s INT -k 20 "$seconds" python3 -m pytest -m cuda tests/test_cuda.py -v -rA --durations=10 -p no:cacheprovider \
    --junitxml="$out/cuda-tests.xml" || status=1
fi

seconds=420
[[ $part == bench && $# -ge 2 ]] && seconds=$2
if [[ $part == bench || $part == all ]]; then
  started=$SECONDS
  echo "== decode CIFAR-10 once into the tensor cache"
  python3 -c "from bench import paths; from bench.data.catalog import load_dataset; \
d = load_dataset('cifar10', paths.data_root(None), cache=paths.cache_dir(None), download=False); print(d.source)" || exit 1
  echo "== benchmarks"
  timeout -s INT -k 20 $(( seconds - 60 - (SECONDS - started) )) python3 -m pytest tests/benchmarks/test_bench_engine.py --benchmark-only -q -s -p no:cacheprovider \
    --benchmark-json="$out/benchmarks.json" --benchmark-columns=median,iqr,rounds || status=1
  echo "== bench perf"
  timeout -s INT -k 10 50 python3 -m bench perf --dataset cifar10 --models resnet18 --batch-sizes 256,512 --device cuda \
    --steps 50 | tee "$out/perf.md" || status=1
fi
if [[ $part == grid ]]; then
  profile=${2:?grid PROFILE SCENARIOS SEEDS [SECONDS]} scenarios=${3:?scenarios} seeds=${4:?seeds} limit=${5:-500}
  results="results/$profile"
  kept="$UNLEARN_BENCH_CACHE/grid-records/$profile"  # this machine's records so far (kept while warm)
  mkdir -p "$results/records" "$kept"
  # a warm machine's earlier call may have finished cells whose records were not unpacked
  # here before this call: take them back (never over a record the checkout has)
  for f in "$kept"/*; do  # (not `cp -n`: its exit status and warnings differ between coreutils releases)
    [[ -f $f && ! -e "$results/records/${f##*/}" ]] && cp -p "$f" "$results/records/"
  done
  echo "records from an earlier call on this machine: $(find "$kept" -maxdepth 1 -type f | wc -l)"
  touch "$out/.grid-start"
  echo "== grid chunk: $profile $scenarios seeds $seeds, at most ${limit}s"
  # SIGINT first: the grid stops between cells and every finished record is already on disk
  timeout -s INT -k 30 "$limit" python3 -m bench run --profile "$profile" --scenarios "$scenarios" --seeds "$seeds" \
    --results "$results" --no-progress --keep-older-code || status=$?
  pack="$out/records-$profile-${scenarios//,/_}-s${seeds//,/_}.tar.gz"
  mapfile -d '' new < <(find "$results/records" -maxdepth 1 -type f -newer "$out/.grid-start" -print0)
  tar -czf "$pack" -T /dev/null "${new[@]}"
  (( ${#new[@]} )) && cp -p "${new[@]}" "$kept/"
  rm -f "$out/.grid-start"
  echo "packed ${#new[@]} new files into $pack"
fi

if [[ $part == tune ]]; then
  profile=${2:?tune PROFILE [SECONDS]} limit=${3:-540}
  report="results/$profile/tune"
  mkdir -p "$UNLEARN_BENCH_CACHE/tune" .data/tune
  touch "$out/.tune-start"
  # the studies so far (a killed study resumes: Optuna's SQLite file, carried in .data); on a
  # warm machine the cache's copy is the newer one (the last call wrote it), so it is kept
  [[ -f ".data/tune/$profile.db" && ! -e "$UNLEARN_BENCH_CACHE/tune/$profile.db" ]] \
    && cp ".data/tune/$profile.db" "$UNLEARN_BENCH_CACHE/tune/"
  echo "== tune $profile, at most ${limit}s"
  # --write takes effect only if every study finishes in time; SIGINT otherwise, and the
  # report below is made from what the studies hold
  timeout -s INT -k 30 "$limit" python3 -m bench tune --profile "$profile" --write --out "$report" --no-progress \
    || { status=1; python3 -m bench tune --profile "$profile" --report-only --out "$report" --no-progress; }
  cp "$UNLEARN_BENCH_CACHE/tune/$profile.db" ".data/tune/$profile.db"
  tuned=$(find bench/profiles/tuned -name "$profile.toml" -newer "$out/.tune-start")  # written this call
  rm -f "$out/.tune-start"
  tar -czf "$out/tune-$profile.tar.gz" ".data/tune/$profile.db" "$report" $tuned
  echo "packed: $(tar -tzf "$out/tune-$profile.tar.gz" | tr '\n' ' ')"
fi

if [[ $part == scale ]]; then
  profile=${2:?scale PROFILE KS WINDOW} ks=${3:?KS, e.g. 1,2,4} window=${4:?WINDOW seconds}
  echo "== scale: Original and Retrain of $profile into the shared cache"
  python3 -m bench run --profile "$profile" --methods Retrain --results /tmp/scale-warm --no-progress || exit 1
  {
    echo "| cells per GPU | window (s) | cells finished | cells / hour |"
    echo "|---:|---:|---:|---:|"
  } > "$out/scale.md"
  for k in ${ks//,/ }; do
    echo "== scale: $k cells per GPU for ${window}s"
    timeout -s INT -k 30 "$window" python3 -m bench run --profile "$profile" --cells-per-gpu "$k" \
      --results "/tmp/scale-$k" --no-progress
    done_cells=$(grep -l '"status": "ok"' /tmp/scale-"$k"/records/*.json 2>/dev/null | grep -v -c -E '/(Original|Retrain)__')
    echo "| $k | $window | $done_cells | $(( done_cells * 3600 / window )) |" | tee -a "$out/scale.md"
  done
fi

exit $status
