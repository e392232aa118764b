#!/usr/bin/env bash
# Workload c side by side: shatter (bench/conv_bench.cpp) and PyTorch (bench/torch_conv.py),
# alternating in one run, for training and inference at 1 and 2 threads; prints images/s of both
# and the ratio shatter / PyTorch (> 1: shatter faster), median of ROUNDS alternations.
#   bash bench/compare_conv.sh BUILD_DIR [ROUNDS]
# PyTorch gets its best settings (perf-anchors.md): OPENBLAS_NUM_THREADS=1 at one thread, the
# default OpenMP wait policy (faster for convolutions).
set -euo pipefail
build=${1:?usage: compare_conv.sh BUILD_DIR [ROUNDS]}
rounds=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../.ci/setup" python3-torch >/dev/null
bin="$build/bench/conv_bench"
[ -x "$bin" ] || { echo "build $bin first (cmake --build $build --target conv_bench)"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for threads in 1 2; do
  for mode in train infer; do
    : > "$tmp/s" ; : > "$tmp/t"
    for ((r = 0; r < rounds; r++)); do
      OMP_NUM_THREADS=$threads "$bin" --benchmark_filter="conv/$mode/threads:$threads/" \
        --benchmark_min_time=2 --benchmark_format=json 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; print(b["items_per_second"])' >> "$tmp/s"
      OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 "$here/torch_conv.py" \
        --mode $mode --threads $threads --blocks 3 --block-seconds 1 |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])' >> "$tmp/t"
    done
    /usr/bin/python3 - "$tmp/s" "$tmp/t" $mode $threads <<'PY'
import statistics, sys
s = [float(v) for v in open(sys.argv[1])]
t = [float(v) for v in open(sys.argv[2])]
ms, mt = statistics.median(s), statistics.median(t)
print(f"conv/{sys.argv[3]:5s} threads {sys.argv[4]}: shatter {ms:7.1f} img/s  pytorch {mt:7.1f} img/s"
      f"  ratio {ms / mt:5.2f}   (shatter runs {[round(v) for v in s]}, pytorch {[round(v) for v in t]})")
PY
  done
done
