#!/usr/bin/env bash
# Workload d side by side: shatter's probe (bench/probe_bench.cpp, forward-mode sweep) and PyTorch
# autograd (bench/torch_probe.py), alternating in one run, at 1 and 2 threads; prints ms per probe
# of both and the ratio PyTorch / shatter (> 1: shatter faster), median of ROUNDS alternations.
#   bash bench/compare_probe.sh BUILD_DIR [ROUNDS]
# PyTorch gets its best settings (perf-anchors.md): OPENBLAS_NUM_THREADS equal to the thread
# count, and OMP_WAIT_POLICY=passive at two threads (its default spin-wait is slower for MLPs);
# shatter runs with the same OpenMP settings.
set -euo pipefail
build=${1:?usage: compare_probe.sh BUILD_DIR [ROUNDS]}
rounds=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../.ci/setup" python3-torch >/dev/null
bin="$build/bench/probe_bench"
[ -x "$bin" ] || { echo "build $bin first (cmake --build $build --target probe_bench)"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "workload d: ReLU MLP, He init, width 200, depth 50, 1024 points, forward + d(output)/d(input), fp32"
for threads in 1 2; do
  : > "$tmp/s"
  : > "$tmp/t"
  policy=""
  [ "$threads" -gt 1 ] && policy=passive
  for ((r = 0; r < rounds; r++)); do
    env OMP_NUM_THREADS=$threads ${policy:+OMP_WAIT_POLICY=$policy} "$bin" --benchmark_filter="probe/tangent/threads:$threads/" \
      --benchmark_min_time=1 --benchmark_format=json 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; print(b["real_time"])' >> "$tmp/s"
    env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads ${policy:+OMP_WAIT_POLICY=$policy} \
      /usr/bin/python3 "$here/torch_probe.py" --threads $threads --blocks 3 --block-seconds 0.5 |
      /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_probe"])' >> "$tmp/t"
  done
  /usr/bin/python3 - "$tmp/s" "$tmp/t" "$threads" <<'PY'
import statistics, sys
s = [float(v) for v in open(sys.argv[1])]
t = [float(v) for v in open(sys.argv[2])]
ms, mt = statistics.median(s), statistics.median(t)
gflop = 4 * 200 * 200 * 1024 * 49 / 1e9
print(f"probe threads {sys.argv[3]}: shatter {ms:7.1f} ms ({gflop / ms * 1e3:5.1f} GFLOP/s)  "
      f"pytorch {mt:7.1f} ms ({gflop / mt * 1e3:5.1f} GFLOP/s)  speed-up {mt / ms:5.2f}x   "
      f"(shatter runs {[round(v, 1) for v in s]}, pytorch {[round(v, 1) for v in t]})")
PY
done
