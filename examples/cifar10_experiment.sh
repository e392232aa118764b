#!/usr/bin/env bash
# The recorded CIFAR-10 experiment: resnet, plain_relu, plain_crelu and plain_crelu_ll at two
# depths, trained with identical options on a subset of CIFAR-10, in two queues of
# single-threaded runs (the machine has 2 cores), then a gnuplot PNG of the learning curves.
#   bash examples/cifar10_experiment.sh BUILD_DIR OUT_DIR [extra cifar10 options...]
# Logs: OUT_DIR/<arch>-<depth>/log.jsonl (one JSON line per epoch); plot: OUT_DIR/curves.png.
# Environment: DEPTHS (default "20 56"), COMMON (the shared options, default below).
set -euo pipefail
build=${1:?usage: cifar10_experiment.sh BUILD_DIR OUT_DIR [options]}
out=${2:?usage: cifar10_experiment.sh BUILD_DIR OUT_DIR [options]}
shift 2
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)
bin="$build/examples/cifar10"
read -r d1 d2 <<< "${DEPTHS:-20 56}"
common=${COMMON:---limit-train 4000 --limit-test 1000 --epochs 3 --batch 64 --lr 0.1 --warmup 0.5 --weight-decay 5e-4 --seed 1}
mkdir -p "$out"
run() {  # arch depth
  local dir="$out/$1-$2"
  mkdir -p "$dir"
  echo "$(date -u +%T) start $1 depth $2" >> "$out/progress.txt"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "$bin" --arch "$1" --depth "$2" --threads 1 $common "${extra[@]}" --out "$dir" \
    > "$dir/stdout.txt" 2> "$dir/stderr.txt" || echo "$1 $2 exited with $?" >> "$out/progress.txt"
  echo "$(date -u +%T) done  $1 depth $2" >> "$out/progress.txt"
}
echo "options: $common $*" > "$out/command.txt"
# Two queues of about equal cost (CReLU nets do twice the convolution work of ReLU nets).
( run plain_crelu_ll "$d2"; run plain_crelu "$d2" ) &
( run resnet "$d2"; run plain_relu "$d2"; run plain_crelu_ll "$d1";
  run resnet "$d1"; run plain_relu "$d1"; run plain_crelu "$d1" ) &
wait
bash "$here/cifar10_plot.sh" "$out"
