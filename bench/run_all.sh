#!/usr/bin/env bash
# The performance comparison in one command: builds the benchmarks, installs PyTorch (Debian
# python3-torch) and OpenBLAS (libopenblas0-pthread, which PyTorch's linear layers need) if
# missing, prints the BLAS and core each side uses, measures the sgemm ceiling and checks
# PyTorch's own sgemm against it, then runs the workloads of
# ../shared/perf-anchors.md in shatter and in PyTorch, alternating the two in rounds, on 1 and 2
# threads, and prints one table.
#
#   bash bench/run_all.sh [--rounds R] [--build DIR] [--only a,b,c,d] [--threads "1 2"]
#                         [--blas] [--memory] [--json FILE]
#
#   a: CReLU MLP depth 20 and 50   b: ReLU MLP depth 20 and 50     (bench/mlp_bench.cpp)
#   c: CIFAR-like CReLU convnet, training and inference             (bench/conv_bench.cpp)
#   d: shattering probe, width 200, depth 50, 1024 points            (bench/probe_bench.cpp)
# A workload whose programs are not in bench/ yet is skipped with a note.
#
# Fair settings (perf-anchors.md): one thread means OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1
# for both; at two threads PyTorch runs both with OMP_WAIT_POLICY=passive and with the default
# policy and the faster one counts (per workload). shatter always runs with its defaults.
# Table: median ms per step of each side over the rounds, speed = PyTorch ms / shatter ms (> 1:
# shatter faster) with the range over rounds, and each side's GFLOP/s as % of the sgemm ceiling
# (the best square sgemm of Eigen and OpenBLAS at that thread count, measured in this run).
# --blas adds a row per MLP workload for shatter built with SHATTER_USE_BLAS=ON (OpenBLAS).
# --memory adds the peak-memory report of a depth-200 CReLU MLP training step (batch 128).
# Validity: if torch.mm (2048^3 floats) reaches less than 50% of the ceiling at a thread count,
# PyTorch is crippled (reference BLAS, a generic OpenBLAS core, ...): the script says so loudly
# and marks every ratio at that thread count NOT VALID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=3 build="$root/build-bench" only="a,b,c,d" threads="1 2" blas=0 memory=0 json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --blas) blas=1; shift ;;
    --memory) memory=1; shift ;;
    --json) json=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run_all.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "run_all.sh: --rounds must be a positive integer" >&2; exit 2; }

# Without OpenBLAS, Debian's torch takes the reference BLAS (workload a ~26x slower).
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null ||
   ! dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed"; then
  bash "$root/.ci/setup" python3-torch libopenblas0-pthread
fi
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))

targets=(mlp_bench gemm_ceiling)
[ -f "$here/conv_bench.cpp" ] && targets+=(conv_bench)
[ -f "$here/probe_bench.cpp" ] && targets+=(probe_bench)
echo "== building ${targets[*]} in $build (Release)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSHATTER_BUILD_BENCH=ON \
  -DSHATTER_BUILD_TESTS=OFF -DSHATTER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j"$jobs" >/dev/null
if [ "$blas" = 1 ]; then
  echo "== building mlp_bench with SHATTER_USE_BLAS=ON in $build-blas"
  cmake -S "$root" -B "$build-blas" -DCMAKE_BUILD_TYPE=Release -DSHATTER_BUILD_BENCH=ON \
    -DSHATTER_USE_BLAS=ON -DSHATTER_BUILD_TESTS=OFF -DSHATTER_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build-blas" --target mlp_bench -j"$jobs" >/dev/null
fi

echo "== BLAS and core of each side"
max_threads=$(echo $threads | tr ' ' '\n' | sort -n | tail -n1)
bash "$here/blas_info.sh" "$build" "$max_threads"
[ "$blas" = 1 ] && bash "$here/blas_info.sh" "$build-blas" "$max_threads" --shatter-only

export RUN_ALL_BENCH="$here" RUN_ALL_BUILD="$build" RUN_ALL_ROUNDS="$rounds" RUN_ALL_ONLY="$only"
export RUN_ALL_THREADS="$threads" RUN_ALL_BLAS="$blas" RUN_ALL_MEMORY="$memory" RUN_ALL_JSON="$json"
exec /usr/bin/python3 - <<'PY'
import json, os, platform, statistics, subprocess, sys, time

bench, build = os.environ["RUN_ALL_BENCH"], os.environ["RUN_ALL_BUILD"]
rounds = int(os.environ["RUN_ALL_ROUNDS"])
only = set(os.environ["RUN_ALL_ONLY"].split(","))
thread_counts = [int(t) for t in os.environ["RUN_ALL_THREADS"].split()]
use_blas = os.environ["RUN_ALL_BLAS"] == "1"


def env_for(threads, policy=None):
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    e.pop("OMP_WAIT_POLICY", None)
    if policy:
        e["OMP_WAIT_POLICY"] = policy
    return e


def gbench(binary, name, threads, min_time=0.3, reps=5, blas_build=False):
    """Median ms per iteration of one Google Benchmark (and its counters)."""
    exe = os.path.join(build + ("-blas" if blas_build else ""), "bench", binary)
    out = subprocess.run([exe, f"--benchmark_filter=^{name}(/min_time:[0-9.]+)?(/real_time)?$", f"--benchmark_min_time={min_time}",
                          f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true",
                          "--benchmark_format=json"], env=env_for(threads), check=True,
                         capture_output=True, text=True).stdout
    rows = [b for b in json.loads(out)["benchmarks"] if b.get("aggregate_name") == "median"]
    if not rows:
        raise RuntimeError(f"{exe}: no benchmark matches {name}")
    b = rows[0]
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * scale, b


def torch_run(script, args, threads, policy):
    out = subprocess.run(["/usr/bin/python3", os.path.join(bench, script), *args, "--threads",
                          str(threads)], env=env_for(threads, policy), check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["ms_per_step"] if "ms_per_step" in r else r["ms_per_probe"]


# Matrix-product flops per step of each workload (multiply-add = 2 flops; elementwise not counted).
def mlp_flops(crelu, depth, width=256, n_in=3072, n_out=10, batch=128):
    hid = 2 * width if crelu else width
    fwd = n_in * width + (depth - 1) * hid * width + hid * n_out
    return 2.0 * batch * (2 * fwd + fwd - n_in * width)


def conv_flops(train, batch=64):
    macs_first, macs = 0, 0
    c, hw = 3, 32
    for out, stride, count in [(16, 1, 6), (32, 2, 1), (32, 1, 6), (64, 2, 1), (64, 1, 6)]:
        for _ in range(count):
            hw_out = hw // stride
            m = hw_out * hw_out * out * c * 9
            if macs_first == 0:
                macs_first = m
            macs += m
            c, hw = 2 * out, hw_out
    macs += c * 10
    per = 2.0 * batch * macs
    return per if not train else 3 * per - 2.0 * batch * macs_first


def probe_flops(width=200, depth=50, points=1024):
    # forward and one backward pass for the input gradient (no weight gradients)
    macs = width + (depth - 1) * width * width + width
    return 2.0 * points * 2 * macs


workloads = []  # (group, label, shatter(binary, bench name), torch(script, args), flops)
if "a" in only or "b" in only:
    for act, grp in [("crelu", "a"), ("relu", "b")]:
        if grp not in only:
            continue
        for depth in (20, 50):
            workloads.append((grp, f"{grp}: {'CReLU' if act == 'crelu' else 'ReLU'} MLP depth {depth}",
                              ("mlp_bench", f"mlp/{act}/depth:{depth}/threads:{{t}}"),
                              ("torch_mlp.py", ["--act", act, "--depth", str(depth)]),
                              mlp_flops(act == "crelu", depth), act, depth))
notes = []
if "c" in only:
    if os.path.exists(os.path.join(bench, "conv_bench.cpp")) and os.path.exists(os.path.join(bench, "torch_conv.py")):
        for mode in ("train", "infer"):
            workloads.append(("c", f"c: conv {'training' if mode == 'train' else 'inference'} (batch 64)",
                              ("conv_bench", f"conv/{mode}/threads:{{t}}"),
                              ("torch_conv.py", ["--mode", mode, "--blocks", "3", "--block-seconds", "0.5"]),
                              conv_flops(mode == "train"), None, None))
    else:
        notes.append("c skipped: bench/conv_bench.cpp or bench/torch_conv.py not present yet")
if "d" in only:
    if os.path.exists(os.path.join(bench, "probe_bench.cpp")) and os.path.exists(os.path.join(bench, "torch_probe.py")):
        workloads.append(("d", "d: probe (w200, depth 50, 1024 pts)",
                          ("probe_bench", "probe/tangent/threads:{t}"),
                          ("torch_probe.py", ["--blocks", "3", "--block-seconds", "0.5"]),
                          probe_flops(), None, None))
    else:
        notes.append("d skipped: bench/probe_bench.cpp or bench/torch_probe.py not present yet")

print(f"== machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
      f"load average at start {os.getloadavg()[0]:.2f}")
with open("/proc/cpuinfo") as f:
    model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
print(f"   cpu: {model}")

# 1. the sgemm ceiling
ceiling, ceiling_src = {}, {}
print("== sgemm ceiling (square sizes 256..2048, Eigen and OpenBLAS)")
for t in thread_counts:
    exe = os.path.join(build, "bench", "gemm_ceiling")
    out = subprocess.run([exe, f"--benchmark_filter=^gemm/.*/threads:{t}/", "--benchmark_min_time=0.2",
                          "--benchmark_format=json"], env=env_for(t), capture_output=True, text=True).stdout
    best = max(((b["GFLOPs"] / 1e9 if b["GFLOPs"] > 1e6 else b["GFLOPs"], b["name"])
                for b in json.loads(out)["benchmarks"] if "GFLOPs" in b), default=(float("nan"), "?"))
    ceiling[t], ceiling_src[t] = best
    print(f"   {t} thread{'s' if t > 1 else ''}: {best[0]:.1f} GFLOP/s ({best[1].replace('/real_time', '')})")

# 1b. PyTorch's own sgemm against the ceiling: below half of it PyTorch is crippled here and a
# ratio against it says nothing about shatter.
torch_sgemm, crippled = {}, set()
print("== PyTorch torch.mm sgemm (2048^3) against the ceiling")
for t in thread_counts:
    try:
        out = subprocess.run(["/usr/bin/python3", os.path.join(bench, "torch_blas.py"), "--threads", str(t)],
                             env=env_for(t), check=True, capture_output=True, text=True).stdout
        torch_sgemm[t] = json.loads(out.strip().splitlines()[-1])["sgemm_gflops"]
    except Exception as e:
        torch_sgemm[t] = float("nan")
        print(f"   torch_blas.py failed at {t} thread(s): {e}")
    frac = torch_sgemm[t] / ceiling[t]
    print(f"   {t} thread{'s' if t > 1 else ''}: {torch_sgemm[t]:.1f} GFLOP/s = {100 * frac:.0f}% of the ceiling")
    if not frac >= 0.5:  # also true for NaN
        crippled.add(t)
        print("!" * 100)
        print(f"!!! WARNING: PyTorch reaches only {100 * frac:.0f}% of the sgemm ceiling at {t} thread(s): it is")
        print("!!! CRIPPLED here (reference BLAS or a generic OpenBLAS core?). Ratios at this thread count are NOT VALID.")
        print("!" * 100, flush=True)

# 2. the workloads, alternating shatter and PyTorch in each round
results = []
for grp, label, (sbin, sname), (tscript, targs), flops, act, depth in workloads:
    for t in thread_counts:
        policies = [None] if t == 1 else ["passive", None]
        s_ms, b_ms, t_ms = [], [], {p: [] for p in policies}
        try:
            for r in range(rounds):
                s_ms.append(gbench(sbin, sname.format(t=t), t)[0])
                for p in policies:
                    t_ms[p].append(torch_run(tscript, targs, t, p))
                if use_blas and sbin == "mlp_bench":
                    b_ms.append(gbench(sbin, sname.format(t=t), t, blas_build=True)[0])
        except Exception as e:  # one broken workload must not lose the others
            notes.append(f"{label} at {t} thread(s) failed: {e}")
            print(f"   {label}: FAILED ({e})", flush=True)
            continue
        best_p = min(policies, key=lambda p: statistics.median(t_ms[p]))
        row = dict(group=grp, label=label, threads=t, shatter_ms=statistics.median(s_ms),
                   torch_ms=statistics.median(t_ms[best_p]), torch_policy=best_p or "default",
                   speed=[tm / sm for sm, tm in zip(s_ms, t_ms[best_p])], shatter_runs=s_ms,
                   torch_runs=t_ms[best_p], flops=flops,
                   torch_other={str(p): statistics.median(v) for p, v in t_ms.items()})
        if b_ms:
            row["blas_ms"] = statistics.median(b_ms)
            row["blas_runs"] = b_ms
        results.append(row)
        print(f"   {label:38s} {t}T  shatter {row['shatter_ms']:8.2f} ms  pytorch {row['torch_ms']:8.2f} ms"
              f" ({row['torch_policy']})" + (f"  shatter+openblas {row['blas_ms']:8.2f} ms" if b_ms else ""),
              flush=True)

# 3. the table
def pct(ms, flops, t):
    g = flops / (ms * 1e-3) / 1e9
    return g, 100.0 * g / ceiling[t]

print()
print(f"Load average at the end: {os.getloadavg()[0]:.2f} (2 cores; other jobs were running if > ~0.5)")
print("| workload | threads | shatter ms/step | PyTorch ms/step (OMP policy) | speed shatter/PyTorch (range) "
      "| shatter GFLOP/s (% ceiling) | PyTorch GFLOP/s (% ceiling) |")
print("|---|---|---|---|---|---|---|")
for r in results:
    t = r["threads"]
    sg, sp = pct(r["shatter_ms"], r["flops"], t)
    tg, tp = pct(r["torch_ms"], r["flops"], t)
    sp_med = r["torch_ms"] / r["shatter_ms"]
    valid = "" if t not in crippled else " NOT VALID (PyTorch crippled)"
    print(f"| {r['label']} | {t} | {r['shatter_ms']:.2f} | {r['torch_ms']:.2f} ({r['torch_policy']}) | "
          f"**{sp_med:.2f}x** ({min(r['speed']):.2f}-{max(r['speed']):.2f}){valid} | {sg:.0f} ({sp:.0f}%) | {tg:.0f} ({tp:.0f}%) |")
    if "blas_ms" in r:
        bg, bp = pct(r["blas_ms"], r["flops"], t)
        print(f"| {r['label']}, shatter+OpenBLAS | {t} | {r['blas_ms']:.2f} | {r['torch_ms']:.2f} | "
              f"{r['torch_ms'] / r['blas_ms']:.2f}x | {bg:.0f} ({bp:.0f}%) | |")
print(f"| sgemm ceiling | " + " / ".join(f"{t}T: {ceiling[t]:.0f} GFLOP/s" for t in thread_counts) + " | | | | | |")
print(f"| PyTorch torch.mm sgemm | " + " / ".join(f"{t}T: {torch_sgemm[t]:.0f} GFLOP/s ({100 * torch_sgemm[t] / ceiling[t]:.0f}%)"
                                               for t in thread_counts) + " | | | | | |")
if crippled:
    print(f"WARNING: PyTorch is crippled at {sorted(crippled)} thread(s) (< 50% of the sgemm ceiling): "
          "those ratios are NOT VALID; install libopenblas0-pthread and check the core above.")
for n in notes:
    print(f"note: {n}")
print(f"rounds: {rounds}; ms/step = median over rounds of each side's median block; range = per-round ratios")

if os.environ["RUN_ALL_MEMORY"] == "1":
    print()
    subprocess.run([os.path.join(build, "bench", "mlp_bench"), "--memory", "200"], env=env_for(1), check=True)
    if os.path.exists(os.path.join(build, "bench", "conv_bench")):
        subprocess.run([os.path.join(build, "bench", "conv_bench"), "--memory", "plain_crelu_ll", "200", "128"],
                       env=env_for(1), check=False)

if os.environ["RUN_ALL_JSON"]:
    with open(os.environ["RUN_ALL_JSON"], "w") as f:
        json.dump(dict(ceiling=ceiling, torch_sgemm=torch_sgemm, not_valid_threads=sorted(crippled),
                       results=results, rounds=rounds), f, indent=1)
PY
