#!/usr/bin/env bash
# Feeds bad command lines and bad files to the example programs and checks the exit code of each
# (2: usage error with a message, 1: bad data or configuration with a message; never a crash).
# Prints one markdown table row per case, with the program's first line on stderr.
#   bash tests/robust/cli_bad_inputs.sh [build-dir]       (default: build)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath -m "${1:-$root/build}")/examples
tmp=$(mktemp -d /tmp/shatter_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0 total=0

# case <expected exit code> <description> <program> [args...]
case_() {
  local want=$1 what=$2 prog=$3
  shift 3
  if [ ! -x "$bin/$prog" ]; then
    echo "| $prog | $what | not built, skipped |"
    return
  fi
  total=$((total + 1))
  (cd "$tmp" && timeout 120 "$bin/$prog" "$@" >"$tmp/out" 2>"$tmp/err")
  local got=$?
  local msg
  msg=$(grep -v '^\s*$' "$tmp/err" | head -1 | sed "s#$tmp#TMP#g; s/|/\\\\|/g" | cut -c1-220)
  local verdict="exit $got"
  if [ "$got" != "$want" ]; then
    verdict="exit $got, EXPECTED $want"
    fails=$((fails + 1))
  fi
  echo "| $prog | $what | $verdict: $msg |"
}

# A tiny fake CIFAR-10 directory (2 images per file) for quick real runs.
mkdir -p "$tmp/cifar"
fake_cifar() {  # <file> <records> [label]
  local f=$1 n=$2 label=${3:-3}
  : >"$f"
  for ((r = 0; r < n; r++)); do
    printf "\\x$(printf %02x "$label")" >>"$f"
    head -c 3072 /dev/urandom >>"$f"
  done
}
for b in 1 2 3 4 5; do fake_cifar "$tmp/cifar/data_batch_$b.bin" 2; done
fake_cifar "$tmp/cifar/test_batch.bin" 2
printf 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n' \
  >"$tmp/cifar/batches.meta.txt"
cp -r "$tmp/cifar" "$tmp/cifar_badlabel"
fake_cifar "$tmp/cifar_badlabel/data_batch_3.bin" 2 12
cp -r "$tmp/cifar" "$tmp/cifar_short"
head -c 5000 "$tmp/cifar/test_batch.bin" >"$tmp/cifar_short/test_batch.bin"
cp -r "$tmp/cifar" "$tmp/cifar_const"
for f in "$tmp"/cifar_const/*.bin; do
  n=$(($(stat -c %s "$f") / 3073))
  : >"$f"
  for ((r = 0; r < n; r++)); do printf '\x01' >>"$f"; head -c 3072 /dev/zero >>"$f"; done
done
mkdir -p "$tmp/empty"

echo "| program | input | result: first line on stderr |"
echo "| --- | --- | --- |"
c="cifar10"
case_ 2 "unknown option --bogus" $c --bogus
case_ 2 "--depth without a value" $c --depth
case_ 2 "--depth abc" $c --depth abc
case_ 2 "--depth 21 (not 6n+2)" $c --data "$tmp/cifar" --depth 21
case_ 2 "--arch foo" $c --arch foo
case_ 2 "--dataset imagenet" $c --dataset imagenet
case_ 2 "--epochs -1" $c --epochs -1
case_ 2 "--lr -0.1" $c --lr -0.1
case_ 1 "--data DIR without CIFAR files" $c --data "$tmp/empty" --depth 8 --epochs 1 --out "$tmp/o0"
case_ 1 "label byte 12 in data_batch_3.bin" $c --data "$tmp/cifar_badlabel" --depth 8 --out "$tmp/o1"
case_ 1 "test_batch.bin truncated to 5000 bytes" $c --data "$tmp/cifar_short" --depth 8 --out "$tmp/o2"
case_ 1 "every pixel 0 (constant channels)" $c --data "$tmp/cifar_const" --depth 8 --out "$tmp/o3"
case_ 0 "(valid tiny run, writes a checkpoint)" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/run"
case_ 2 "--resume without a checkpoint" $c --data "$tmp/cifar" --depth 8 --resume --out "$tmp/none"
case_ 2 "--resume with another --depth" $c --data "$tmp/cifar" --depth 14 --epochs 2 --batch 4 --resume --out "$tmp/run"
if [ -f "$tmp/run/checkpoint.safetensors" ]; then
  cp -r "$tmp/run" "$tmp/run_cut"
  size=$(stat -c %s "$tmp/run/checkpoint.safetensors")
  head -c $((size - 100)) "$tmp/run/checkpoint.safetensors" >"$tmp/run_cut/checkpoint.safetensors"
  case_ 2 "--resume with a truncated checkpoint" $c --data "$tmp/cifar" --depth 8 --epochs 2 --batch 4 --resume --out "$tmp/run_cut"
  cp -r "$tmp/run" "$tmp/run_flip"
  printf 'X' | dd of="$tmp/run_flip/checkpoint.safetensors" bs=1 seek=8 conv=notrunc 2>/dev/null
  case_ 2 "--resume with a corrupted checkpoint header" $c --data "$tmp/cifar" --depth 8 --epochs 2 --batch 4 --resume --out "$tmp/run_flip"
fi
s="shattering"
case_ 2 "unknown option --bogus" $s --bogus
case_ 2 "--points 3 (< 8)" $s --points 3
case_ 2 "--seeds 1 (< 2)" $s --seeds 1
case_ 2 "--width 0" $s --width 0
case_ 2 "--depths 4,0" $s --depths 4,0
case_ 2 "--depths 4,,8" $s --depths 4,,8
case_ 2 "--archs resnet,foo" $s --archs resnet,foo
case_ 2 "--bias-std -1" $s --bias-std -1
case_ 2 "--bias-std nan" $s --bias-std nan
case_ 2 "--bn-grad sometimes" $s --bn-grad sometimes
case_ 2 "--threads 0" $s --threads 0
case_ 2 "--points 1e9x" $s --points 1e9x
q="quickstart"
case_ 1 "data directory without Fashion-MNIST" $q "$tmp/empty"
echo
if [ "$fails" -eq 0 ]; then
  echo "cli bad inputs: all $total cases gave the expected exit code"
else
  echo "cli bad inputs: $fails of $total cases gave an unexpected exit code"
fi
[ "$fails" -eq 0 ]
