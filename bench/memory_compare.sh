#!/usr/bin/env bash
# Deep CIFAR networks side by side: shatter (bench/conv_bench.cpp --memory/--time) and PyTorch
# (bench/torch_cifar.py), the same architectures, fp32, each measurement in a fresh process,
# alternating shatter and PyTorch. Per architecture:
#   peak RSS of one training step at batch 128 (forward, cross-entropy, backward, SGD momentum)
#   peak RSS of one evaluation pass at batch 500
#   training images/s at batch 128 over a few steps (median after one warm-up step, and over all
#   steps), PyTorch at its better OMP_WAIT_POLICY (passive or default; the faster counts)
# Prints the BLAS and core each side uses, then one markdown table with both sides and the ratios.
#
#   bash bench/memory_compare.sh [--depth 200] [--archs plain_crelu_ll,resnet,plain_relu]
#        [--threads 2] [--steps 5] [--batch 128] [--eval-batch 500] [--build DIR] [--quick]
#        [--mem-limit GIB]
# --quick: depth 20, 2 timed steps (a smoke test of the whole script; later options override).
# --mem-limit: address-space limit of each measured process (default 90% of MemAvailable at the
# start), so a run that needs too much fails alone instead of waking the OOM killer on a shared
# machine. Depth 200 needs several GiB and some minutes per architecture.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command="bash bench/memory_compare.sh $*"
depth=200 archs="plain_crelu_ll,resnet,plain_relu" threads=2 steps=5 batch=128 eval_batch=500
build="$root/build-bench" mem_limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --depth) depth=$2; shift 2 ;;
    --archs) archs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --eval-batch) eval_batch=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --mem-limit) mem_limit=$2; shift 2 ;;
    --quick) depth=20 steps=2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "memory_compare.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in depth threads steps batch eval_batch; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "memory_compare.sh: --${v/_/-} must be a positive integer" >&2; exit 2; }
done

# PyTorch and OpenBLAS (without OpenBLAS, Debian's torch falls back to the reference BLAS).
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null ||
   ! dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed"; then
  bash "$root/.ci/setup" python3-torch libopenblas0-pthread
fi

jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
echo "== building conv_bench in $build (Release)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSHATTER_BUILD_BENCH=ON \
  -DSHATTER_BUILD_TESTS=OFF -DSHATTER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target conv_bench -j"$jobs" >/dev/null

echo "== BLAS and core"
bash "$here/blas_info.sh" "$build" "$threads"

export MC_BENCH="$here" MC_BUILD="$build" MC_DEPTH="$depth" MC_ARCHS="$archs" MC_THREADS="$threads"
export MC_STEPS="$steps" MC_BATCH="$batch" MC_EVAL_BATCH="$eval_batch" MC_MEM_LIMIT="$mem_limit"
export MC_COMMAND="$command"
exec /usr/bin/python3 - <<'PY'
import json, os, resource, signal, subprocess, time

E = os.environ
bench, build, command = E["MC_BENCH"], E["MC_BUILD"], E["MC_COMMAND"]
depth, threads, steps = int(E["MC_DEPTH"]), int(E["MC_THREADS"]), int(E["MC_STEPS"])
batch, eval_batch = int(E["MC_BATCH"]), int(E["MC_EVAL_BATCH"])
archs = [a for a in E["MC_ARCHS"].split(",") if a]
with open("/proc/meminfo") as f:
    avail_gib = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable")) / 2**20
limit_gib = float(E["MC_MEM_LIMIT"]) if E["MC_MEM_LIMIT"] else 0.9 * avail_gib


def env_for(policy=None):
    e = dict(E, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    for k in ("OMP_WAIT_POLICY", "OPENBLAS_VERBOSE"):
        e.pop(k, None)
    if policy:
        e["OMP_WAIT_POLICY"] = policy
    return e


def limit_memory():
    lim = int(limit_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))


def run(cmd, policy=None):
    """The JSON line of one fresh measuring process, or {"error": ...} when it failed."""
    p = subprocess.run(cmd, env=env_for(policy), capture_output=True, text=True,
                       preexec_fn=limit_memory)
    if p.returncode == 0:
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": "no JSON line in the output"}
    why = (f"killed by {signal.Signals(-p.returncode).name}" if p.returncode < 0
           else f"exit {p.returncode}")
    tail = (p.stderr.strip().splitlines() or [""])[-1][:160].replace("|", "/")
    return {"error": f"{why}: {tail}" if tail else why}


def shatter(arch, kind, ev=False):
    exe = os.path.join(build, "bench", "conv_bench")
    b = eval_batch if ev else batch
    args = ["--memory", arch, str(depth), str(b)] if kind == "memory" else \
           ["--time", arch, str(depth), str(b), str(steps)]
    return run([exe, *args, *(["--eval"] if ev else []), "--threads", str(threads)])


def pytorch(arch, kind, ev=False, policy=None):
    b = eval_batch if ev else batch
    return run(["/usr/bin/python3", os.path.join(bench, "torch_cifar.py"), f"--{kind}", "--arch",
                arch, "--depth", str(depth), "--batch", str(b), "--threads", str(threads),
                "--steps", str(steps), *(["--eval"] if ev else [])], policy)


def show(label, r):
    if "error" in r:
        print(f"   {label:38s} FAILED ({r['error']})", flush=True)
    else:
        print(f"   {label:38s} peak RSS {r['peak_rss_mib']:8.1f} MiB  {r['images_per_second']:8.1f} img/s"
              f"  steps {r['step_ms']} ms", flush=True)


print(f"== depth {depth}, threads {threads}, archs {', '.join(archs)}; memory limit per process "
      f"{limit_gib:.1f} GiB; load average {os.getloadavg()[0]:.2f}", flush=True)
results = {}
for arch in archs:
    r = results[arch] = {}
    for key, kind, ev in [("train_mem", "memory", False), ("eval_mem", "memory", True)]:
        r[key] = (shatter(arch, kind, ev), pytorch(arch, kind, ev))
        show(f"{arch} {key} shatter", r[key][0])
        show(f"{arch} {key} pytorch", r[key][1])
    s = shatter(arch, "time")
    show(f"{arch} time shatter", s)
    tries = {p or "default": pytorch(arch, "time", policy=p) for p in ("passive", None)}
    for p, t in tries.items():
        show(f"{arch} time pytorch ({p})", t)
    ok = [t for t in tries.values() if "error" not in t]
    r["time"] = (s, max(ok, key=lambda t: t["images_per_second"]) if ok else tries["default"])
    r["torch_policies"] = {p: t.get("images_per_second") for p, t in tries.items()}


def mem_cell(x):
    if "error" in x:
        return f"failed ({x['error']})"
    return f"{x['peak_rss_mib']:.0f} (+{x['peak_rss_mib'] - x['rss_before_mib']:.0f})"


def speed_cell(x):
    if "error" in x:
        return f"failed ({x['error']})"
    pol = f", {x['omp_wait_policy']}" if x["side"] == "pytorch" else ""
    return f"{x['images_per_second']:.1f} (all {x['images_per_second_all']:.1f}{pol})"


def ratio(s, t, key):
    if "error" in s or "error" in t:
        return "n/a"
    if key == "images_per_second":
        return (f"**{s[key] / t[key]:.2f}** (all "
                f"{s['images_per_second_all'] / t['images_per_second_all']:.2f})")
    return f"**{s[key] / t[key]:.2f}**"


print()
print(f"Deep CIFAR networks, depth {depth}, fp32, {threads} threads; each figure from a fresh process, "
      "shatter and PyTorch alternating.")
print("Memory: peak RSS in MiB (growth over the process's peak before building the network); "
      "ratio shatter / PyTorch (< 1: shatter needs less).")
print("Speed: training images/s, median step after one warm-up (all: over every step including "
      "the first); ratio shatter / PyTorch (> 1: shatter faster).")
print()
print("| architecture | measurement | shatter | PyTorch | shatter / PyTorch |")
print("|---|---|---|---|---|")
for arch, r in results.items():
    sp, tp = r["train_mem"][0].get("parameters"), r["train_mem"][1].get("parameters")
    name = f"{arch} ({sp / 1e6:.2f} M params, {4 * sp / 2**20:.1f} MiB)" if sp else arch
    if sp and tp and sp != tp:
        name += f" **parameter counts differ: PyTorch {tp}**"
    rows = [("train_mem", f"peak RSS, one training step, batch {batch}", mem_cell, "peak_rss_mib"),
            ("eval_mem", f"peak RSS, one evaluation pass, batch {eval_batch}", mem_cell, "peak_rss_mib"),
            ("time", f"training img/s, batch {batch}, median of {steps} steps after 1", speed_cell, "images_per_second")]
    for i, (key, label, cell, field) in enumerate(rows):
        s, t = r[key]
        print(f"| {name if i == 0 else ''} | {label} | {cell(s)} | {cell(t)} | {ratio(s, t, field)} |")
print()
for arch, r in results.items():
    pol = ", ".join(f"{p} {v:.1f}" if v else f"{p} failed" for p, v in r["torch_policies"].items())
    print(f"PyTorch img/s by OMP_WAIT_POLICY, {arch}: {pol}")
print(f"command: {command}")
print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
      f"{os.getloadavg()[0]:.2f} (2 cores: other jobs were running if > ~0.5 before)")
PY
