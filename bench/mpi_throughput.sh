#!/usr/bin/env bash
# Data-parallel throughput on this machine: the CIFAR nets (resnet, plain_relu, plain_crelu_ll)
# at depths 20 and 56, batch 128, trained by examples/cifar10 for STEPS steps (one epoch of
# --limit-train 128*STEPS images) as 1 rank x 2 threads (no mpirun) and as 2 ranks x 1 thread
# (mpirun -np 2, Open MPI's default binding: one core per rank), in training images per second
# (the epoch's training part, from log.jsonl). Then the numbers the README's scaling model rests
# on: each net's parameter count at depths 56 and 200, the 1 x 2 step time at depth 200 (from
# the wall times of runs of 3 and of 1 step), and the
# time of one in-place float all-reduce (shatter's mpi_communicator::all_sum) between 2 ranks for
# each gradient size and for a small batch-norm-sized message. Prints the load average before and
# after, since other processes on the machine change every figure.
#   bash bench/mpi_throughput.sh [--build DIR] [--steps N] [--data DIR]
# Needs a build with -DSHATTER_USE_MPI=ON (target cifar10), Open MPI and the CIFAR-10 binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build steps=8 data=$root/../shared/data/cifar-10-batches-bin
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "usage: mpi_throughput.sh [--build DIR] [--steps N] [--data DIR]" >&2; exit 2 ;;
  esac
done
prog=$build/examples/cifar10
[ -x "$prog" ] || { echo "mpi_throughput: no $prog (configure with -DSHATTER_USE_MPI=ON, build cifar10)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpi_throughput: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
limit=$((128 * steps))
common=(--data "$data" --epochs 1 --batch 128 --limit-train "$limit" --limit-test 128 --lr 1e-4)

# rate DIR: training images per second of the run in DIR.
rate() { python3 -c 'import json,sys; print("%.1f" % json.loads(open(sys.argv[1]).readline())["train_images_per_second"])' "$1/log.jsonl"; }
# params ARCH DEPTH: the net's parameter count (from the program's first line; one tiny step).
params() {
  { "$prog" --data "$data" --arch "$1" --depth "$2" --epochs 1 --batch 2 --limit-train 2 \
    --limit-test 1 --lr 1e-6 --threads 2 --out "$work/p-$1-$2" 2>&1 || true; } | sed -n 's/.*(\([0-9]*\) parameters).*/\1/p' | head -1
}

# wall ARCH N: seconds of a whole depth-200 run on N images (batch 128), 1 rank x 2 threads.
wall() {
  local t0 t1
  t0=$(date +%s.%N)
  "$prog" --data "$data" --arch "$1" --depth 200 --epochs 1 --batch 128 --limit-train "$2" \
    --limit-test 1 --lr 1e-4 --threads 2 --out "$work/c-$1-$2" >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$t1"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| net | depth | 1 rank x 2 threads img/s | 2 ranks x 1 thread img/s | ratio | rank 0 in collectives, s/step |"
echo "|---|---|---|---|---|---|"
for depth in 20 56; do
  for arch in resnet plain_relu plain_crelu_ll; do
    "$prog" "${common[@]}" --arch "$arch" --depth "$depth" --threads 2 --out "$work/a-$arch-$depth" \
      >/dev/null 2>&1
    one=$(rate "$work/a-$arch-$depth")
    coll=$(mpirun -np 2 "$prog" "${common[@]}" --arch "$arch" --depth "$depth" --threads 1 \
      --out "$work/b-$arch-$depth" 2>&1 >/dev/null | sed -n 's/.*rank 0 spent \([0-9.e-]*\) s in MPI.*/\1/p')
    two=$(rate "$work/b-$arch-$depth")
    python3 -c 'import sys; a,b,c,s=map(float,sys.argv[1:5]); print("| %s | %s | %.1f | %.1f | %.2f | %.3f |" % (sys.argv[5], sys.argv[6], a, b, b/a, c/s))' \
      "$one" "$two" "$coll" "$steps" "$arch" "$depth"
  done
done
# Synchronized batch norm: three small all-reduces per batch-norm layer and step.
coll=$(mpirun -np 2 "$prog" "${common[@]}" --arch resnet --depth 56 --threads 1 --sync-bn \
  --out "$work/s-resnet-56" 2>&1 >/dev/null | sed -n 's/.*rank 0 spent \([0-9.e-]*\) s in MPI.*/\1/p')
python3 -c 'import sys; a,b,c,s=map(float,sys.argv[1:5]); print("| resnet, --sync-bn | 56 | %.1f | %.1f | %.2f | %.3f |" % (a, b, b/a, c/s))' \
  "$(rate "$work/a-resnet-56")" "$(rate "$work/s-resnet-56")" "$coll" "$steps"
echo
echo "load after the throughput runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| net | depth | parameters | gradient MB (float) | 1 x 2 step time, s |"
echo "|---|---|---|---|---|"
counts=() model=()
for arch in resnet plain_relu plain_crelu_ll; do
  for depth in 56 200; do
    n=$(params "$arch" "$depth")
    counts+=("$n")
    if [ "$depth" = 56 ]; then
      s=$(python3 -c 'import sys; print("%.3f" % (128 / float(sys.argv[1])))' "$(rate "$work/a-$arch-56")")
    else
      # Wall time of whole runs of 3 steps and of 1 step: their difference is 2 steps. (A plain
      # net of depth 200 may end with a non-finite test loss, and then writes no log line.)
      t3=$(wall "$arch" 384) t1=$(wall "$arch" 128)
      s=$(python3 -c 'import sys; print("%.3f" % ((float(sys.argv[1]) - float(sys.argv[2])) / 2))' "$t3" "$t1")
    fi
    python3 -c 'import sys; n=int(sys.argv[1]); print("| %s | %s | %d | %.2f | %s |" % (sys.argv[2], sys.argv[3], n, 4*n/1e6, sys.argv[4]))' \
      "$n" "$arch" "$depth" "$s"
    model+=("$arch:$depth:$n:$s")
  done
done
echo
echo "all-reduce of N floats between 2 ranks (median of 30, ms): 64 (a small message), 2^20 (one"
echo "bucket of shatter's gradient_reducer), then each gradient above as one message:"
mpicxx -O2 -std=c++17 -I"$root/include" "$here/mpi/allreduce_time.cpp" -o "$work/allreduce_time"
mpirun -np 2 "$work/allreduce_time" 30 64 1048576 "${counts[@]}" >"$work/allreduce.txt"
awk '{printf "  %10d floats (%9d bytes): %8.3f ms\n", $1, $2, $3}' "$work/allreduce.txt"
bucket=$(awk 'NR == 2 {print $3}' "$work/allreduce.txt")
echo "per step in training, ceil(parameters / 2^20) buckets of at most 2^20 floats: about"
for n in "${counts[@]}"; do
  python3 -c 'import math,sys; n=int(sys.argv[1]); b=math.ceil(n/2**20); print("  %10d parameters: %d buckets, %.1f ms" % (n, b, b*float(sys.argv[2])))' "$n" "$bucket"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "scaling model (bench/mpi_scaling_model.py):"
python3 "$here/mpi_scaling_model.py" "${model[@]}"
