#!/usr/bin/env bash
# Feeds bad command lines and bad files to the example programs and checks the exit code of each
# (2: usage error with a message, 1: bad data or configuration with a message; never a crash),
# then properties of its results ("check" rows): messages that name the option or the file,
# nothing reported that was not written (full disk, failing gnuplot), no shell run on --out,
# --json's last stdout line parsing as JSON, --depths/--archs restricting every run.
# Prints one markdown table row per case, with the program's error (or first) line on stderr.
#   bash tests/robust/cli_bad_inputs.sh [build-dir]       (default: build)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath -m "${1:-$root/build}")/examples
tmp=$(mktemp -d /tmp/shatter_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0 total=0

# case <expected exit code> <description> <program> [args...]
# The command runs in $tmp (stdout in $tmp/out, stderr in $tmp/err), behind the command prefix
# in the array `wrap` when one is set (a mount namespace, a resource limit, another PATH).
wrap=()
case_() {
  local want=$1 what=$2 prog=$3
  shift 3
  if [ ! -x "$bin/$prog" ]; then
    echo "| $prog | $what | not built, skipped |"
    return
  fi
  total=$((total + 1))
  (cd "$tmp" && timeout 120 "${wrap[@]}" "$bin/$prog" "$@" >"$tmp/out" 2>"$tmp/err")
  local got=$?
  local msg
  msg=$( (grep -m1 'error' "$tmp/err" || grep -v '^\s*$' "$tmp/err") | head -1 | sed "s#$tmp#TMP#g; s/|/\\\\|/g" | cut -c1-220)
  local verdict="exit $got"
  if [ "$got" != "$want" ]; then
    verdict="exit $got, EXPECTED $want"
    fails=$((fails + 1))
  fi
  echo "| $prog | $what | $verdict: $msg |"
}

# check <description> <command...>: a property of the last case's results; counts as a case.
check() {
  local what=$1
  shift
  total=$((total + 1))
  if (cd "$tmp" && "$@") >/dev/null 2>&1; then
    echo "| | $what | ok |"
  else
    echo "| | $what | FAILED |"
    fails=$((fails + 1))
  fi
}
has() { grep -q -e "$1" "$2"; }
# The last stdout line is one JSON object; json_is <python expression over j> checks it.
json_is() {
  python3 -c 'import json, sys; j = json.loads(open(sys.argv[1]).read().splitlines()[-1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$tmp/out" "$1"
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

echo "| program | input | result: error (or first) line on stderr |"
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
case_ 0 "(valid tiny run, --data=DIR, writes a checkpoint)" $c --data="$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/run"
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
# Values that cannot train or make no sense: exit 2, the message naming the option.
case_ 2 "--epochs 0" $c --data "$tmp/cifar" --depth 8 --epochs 0
check "the message names --epochs" has "^cifar10: --epochs" err
case_ 2 "--limit-train 1" $c --data "$tmp/cifar" --depth 8 --limit-train 1
check "the message names --limit-train" has "^cifar10: --limit-train" err
case_ 2 "--batch 64 with 10 training images" $c --data "$tmp/cifar" --depth 8 --batch 64 --out "$tmp/o4"
check "the message names --batch and the data size" has "^cifar10: --batch 64 is larger than the training set (10 images" err
case_ 2 "--seed -1" $c --data "$tmp/cifar" --seed -1
check "the message names --seed" has "^cifar10: --seed" err
case_ 2 "--warmup 1e308" $c --data "$tmp/cifar" --warmup 1e308
check "the message names --warmup" has "^cifar10: --warmup" err
case_ 2 "--warmup 3 with --epochs 2 (beyond the run)" $c --data "$tmp/cifar" --epochs 2 --warmup 3
check "the message names --warmup and --epochs" has "^cifar10: --warmup 3.0 is longer than the run (--epochs 2)" err
case_ 2 "--lr 1e308" $c --data "$tmp/cifar" --lr 1e308
check "the message names --lr" has "^cifar10: --lr" err
case_ 2 "--out ''" $c --data "$tmp/cifar" --out ""
check "the message names --out" has "^cifar10: --out" err
case_ 2 "--out naming an existing file" $c --data "$tmp/cifar" --out "$tmp/cifar/test_batch.bin"
check "the message names --out" has "^cifar10: --out" err
cp -r "$tmp/cifar" "$tmp/cifar_fifo"
rm "$tmp/cifar_fifo/test_batch.bin"
mkfifo "$tmp/cifar_fifo/test_batch.bin"
case_ 2 "a FIFO as test_batch.bin (must not block)" $c --data "$tmp/cifar_fifo" --depth 8 --out "$tmp/o5"
check "the message names --data and the FIFO" has "^cifar10: --data: '.*test_batch.bin' is a FIFO" err
cp -r "$tmp/cifar" "$tmp/cifar_dir"
rm "$tmp/cifar_dir/data_batch_2.bin"
mkdir "$tmp/cifar_dir/data_batch_2.bin"
case_ 2 "a directory as data_batch_2.bin" $c --data "$tmp/cifar_dir" --depth 8 --out "$tmp/o6"
check "the message says it is a directory" has "data_batch_2.bin' is a directory" err
mkdir -p "$tmp/ckfifo"
mkfifo "$tmp/ckfifo/checkpoint.safetensors"
case_ 2 "a FIFO as the checkpoint, --resume" $c --data "$tmp/cifar" --depth 8 --resume --out "$tmp/ckfifo"
check "the message names --out and the FIFO" has "^cifar10: --out: .*checkpoint.safetensors' is a FIFO" err
case_ 2 "a second run on a directory holding a run" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/run"
check "the message says to resume it" has "already holds a run.*resume it" err
case_ 2 "--resume with another --lr" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --lr 0.05 --resume --out "$tmp/run"
check "the message names lr and both values" has "option 'lr' is '0.1' in the checkpoint but '0.05' in this run" err
md5_run=$(cat "$tmp"/run/checkpoint.safetensors "$tmp"/run/log.jsonl "$tmp"/run/summary.json | md5sum)
case_ 0 "--resume of a finished run" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --resume --out "$tmp/run" --json
check "it says so" has "already finished" err
check "checkpoint, log and summary unchanged" test "$md5_run" = "$(cat "$tmp"/run/checkpoint.safetensors "$tmp"/run/log.jsonl "$tmp"/run/summary.json | md5sum)"
check "--json: the last stdout line is the summary" json_is 'j["finished"] and j["epochs_done"] == 1'
# Checked writes: log.jsonl or summary.json on a full disk (/dev/full).
if [ -w /dev/full ]; then
  mkdir -p "$tmp/full1"
  ln -s /dev/full "$tmp/full1/log.jsonl"
  case_ 1 "log.jsonl on /dev/full" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/full1" --json
  check "the message names log.jsonl and the OS error" has "error: cannot write '.*full1/log.jsonl': No space left on device" err
  check "no summary reported" bash -c '! grep -q "final test accuracy" out'
  check "the checkpoint before it is kept" test -s "$tmp/full1/checkpoint.safetensors"
  mkdir -p "$tmp/full2"
  ln -s /dev/full "$tmp/full2/summary.json"
  case_ 0 "summary.json a link to /dev/full (replaced whole)" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/full2"
  check "summary.json is now a complete JSON file" python3 -c 'import json, os, sys; assert not os.path.islink(sys.argv[1]); json.load(open(sys.argv[1]))' "$tmp/full2/summary.json"
else
  echo "| $c | log.jsonl on /dev/full | skipped: /dev/full is not available |"
fi
mkdir -p "$tmp/full3/summary.json/x"
case_ 1 "summary.json cannot be written (a directory)" $c --data "$tmp/cifar" --depth 8 --epochs 1 --batch 4 --no-augment --out "$tmp/full3" --json
check "the message names summary.json and the OS error" has "error: cannot write '.*full3/summary.json': rename: " err
check "no summary reported" bash -c '! grep -q "final test accuracy" out'
# The weight decay that broke a model while exiting 0 is refused (the library's guard is tested
# in tests/robust/run_dir_test.cpp).
case_ 2 "--weight-decay 1e30" $c --data "$tmp/cifar" --depth 8 --weight-decay 1e30
check "the message names --weight-decay" has "^cifar10: --weight-decay" err
# Run directories under signals: a second run on a locked directory is refused naming the
# holder; SIGTERM and SIGINT finish the step, checkpoint, say how to resume and exit 143 / 130;
# resuming after SIGINT ends bitwise equal to an uninterrupted run (--threads 1).
mkdir -p "$tmp/big"
for b in 1 2 3 4 5; do fake_cifar "$tmp/big/data_batch_$b.bin" 48; done
fake_cifar "$tmp/big/test_batch.bin" 16
cp "$tmp/cifar/batches.meta.txt" "$tmp/big/"
big=(--data "$tmp/big" --depth 8 --threads 1 --batch 8 --limit-train 192 --seed 3)
wait_for() {  # <file> [seconds]: until the file is not empty
  for ((i = 0; i < ${2:-30} * 50; i++)); do [ -s "$1" ] && return 0; sleep 0.02; done
  return 1
}
(cd "$tmp" && exec "$bin/$c" "${big[@]}" --epochs 1000 --out "$tmp/locked" >"$tmp/lock_out" 2>"$tmp/lock_err") &
holder=$!
if wait_for "$tmp/locked/lock"; then
  kill -STOP $holder
  case_ 2 "a second run on a locked --out" $c "${big[@]}" --epochs 1000 --out "$tmp/locked"
  check "the message names the holder's pid" has "in use by another run (pid $holder on host" err
  kill -CONT $holder
  wait_for "$tmp/locked/log.jsonl"
  kill -TERM $holder
fi
wait $holder
rc=$?
total=$((total + 1))
if [ $rc -eq 143 ] && grep -q "stopped by SIGTERM after step" "$tmp/lock_err"; then
  echo "| $c | SIGTERM during a run | exit 143: $(grep -m1 'stopped by' "$tmp/lock_err" | sed "s#$tmp#TMP#g") |"
else
  echo "| $c | SIGTERM during a run | exit $rc, EXPECTED 143 |"
  fails=$((fails + 1))
fi
case_ 0 "(uninterrupted reference run, 4 epochs)" $c "${big[@]}" --epochs 4 --out "$tmp/ref"
(cd "$tmp" && exec "$bin/$c" "${big[@]}" --epochs 4 --out "$tmp/int" >"$tmp/int_out" 2>"$tmp/int_err") &
pid=$!
wait_for "$tmp/int/log.jsonl" && kill -INT $pid
wait $pid
rc=$?
total=$((total + 1))
if [ $rc -eq 130 ] && grep -q "resume with: .* --resume" "$tmp/int_err"; then
  echo "| $c | SIGINT after the first epoch | exit 130: $(grep -m1 'stopped by' "$tmp/int_err" | sed "s#$tmp#TMP#g") |"
else
  echo "| $c | SIGINT after the first epoch | exit $rc, EXPECTED 130 and the resume command |"
  fails=$((fails + 1))
fi
case_ 0 "--resume after SIGINT" $c "${big[@]}" --epochs 4 --out "$tmp/int" --resume
check "final tensors bitwise equal to the uninterrupted run, same log" python3 - "$tmp/ref" "$tmp/int" <<'PY'
import json, struct, sys
def tensors(d):
    b = open(d + "/checkpoint.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b[8 + n:]
def log(d):
    drop = ("seconds", "train_images_per_second")
    return [{k: v for k, v in json.loads(l).items() if k not in drop} for l in open(d + "/log.jsonl")]
a, b = sys.argv[1], sys.argv[2]
assert tensors(a) == tensors(b)
assert log(a) == log(b) and len(log(a)) == 4
PY
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
tiny=(--seeds 2 --width 8 --points 16 --threads 1)
one=("${tiny[@]}" --depths 2 --archs crelu_ll)
case_ 0 "--help" $s --help
check "--help: the options on stdout, --json among them" has "--json" out
case_ 2 "--out naming an existing file" $s --out "$tmp/cifar/test_batch.bin"
check "the message names --out" has "^shattering: --out" err
check "the message points to --help" has "shattering --help" err
case_ 2 "--bias-std 1e999 (overflows to inf)" $s --bias-std 1e999
check "the message names --bias-std" has "^shattering: --bias-std" err
case_ 2 "--seeds=-1" $s --seeds=-1
check "the message names --seeds" has "^shattering: --seeds" err
case_ 2 "--threads 100000" $s --threads 100000
check "the message names --threads" has "^shattering: --threads" err
case_ 0 "--seeds=3 --json (tiny run)" $s "${one[@]}" --seeds=3 --out "$tmp/s1" --json
check "--json: the last stdout line is JSON, seeds 3" json_is 'j["seeds"] == 3'
case_ 0 "--seeds 3 --json (tiny run)" $s "${one[@]}" --seeds 3 --out "$tmp/s2" --json
check "--json: the last stdout line is JSON, seeds 3" json_is 'j["seeds"] == 3'
check "--json: one depth_sweep row, constant" json_is 'j["depth_sweep"][0]["verdict"] == "constant" and len(j["depth_sweep"]) == 1'
check "progress on stderr only" bash -c '! grep -q probing out && grep -q "probing 1 configurations" err'
case_ 0 "--depths 1 --archs crelu probes only that" $s "${tiny[@]}" --depths 1 --archs crelu --out "$tmp/r1"
check "one configuration probed (figure runs restricted)" has "probing 1 configurations x 2 seeds (2 networks" err
check "one row in depth_sweep.csv" test "$(wc -l <"$tmp/r1/depth_sweep.csv")" -eq 2
check "no figure of unrequested networks" test ! -e "$tmp/r1/figure3_activity.csv"
evil="x'; touch PWNED; echo '"
case_ 0 "--out with quotes, ';' and spaces" $s "${one[@]}" --out "$evil"
check "nothing run by a shell: no PWNED" test ! -e "$tmp/PWNED"
if command -v gnuplot >/dev/null; then
  check "plots made in the quoted folder" test -s "$tmp/$evil/depth_sweep.png"
  case_ 0 "--out \"a b/it's \\\"q\\\"\" (spaces, quotes)" $s "${one[@]}" --out "a b/it's \"q\""
  check "plots made there" test -s "$tmp/a b/it's \"q\"/depth_sweep.png"
fi
# gnuplot that fails, or exits 0 without writing: exit 1, and no "Plots:" line.
mkdir -p "$tmp/fail_bin" "$tmp/lazy_bin"
printf '#!/bin/sh\necho "gnuplot: broken" >&2\nexit 3\n' >"$tmp/fail_bin/gnuplot"
printf '#!/bin/sh\nexit 0\n' >"$tmp/lazy_bin/gnuplot"
chmod +x "$tmp/fail_bin/gnuplot" "$tmp/lazy_bin/gnuplot"
wrap=(env "PATH=$tmp/fail_bin:$PATH")
case_ 1 "gnuplot exits 3" $s "${one[@]}" --out "$tmp/g1"
check "the message names gnuplot and its exit code" has "gnuplot.*exit code 3" err
check "no plots reported" bash -c '! grep -q "^Plots:" out'
wrap=(env "PATH=$tmp/lazy_bin:$PATH")
case_ 1 "gnuplot exits 0 but writes no PNG" $s "${one[@]}" --out "$tmp/g2"
check "the message names the missing PNG" has "depth_sweep.png" err
check "no plots reported" bash -c '! grep -q "^Plots:" out'
wrap=()
(cd "$tmp" && "$bin/$s" "${one[@]}" --out "$tmp/g3" --json >/dev/full 2>"$tmp/err")
rc=$?
check "stdout on /dev/full: exit 1 with a message" bash -c "[ $rc -eq 1 ] && grep -q 'standard output' err"
# A full disk: a 16 KiB tmpfs in a private mount namespace, or else a file-size limit of
# <KiB> (writes past it fail with EFBIG); skipped where neither is allowed.
#   full <KiB>: sets `wrap` for the next case
mkdir -p "$tmp/disk"
unshare_flags=-m
[ "$(id -u)" -eq 0 ] || unshare_flags=-rm
if [ -z "${SHATTER_TEST_NO_TMPFS:-}" ] &&
  unshare "$unshare_flags" sh -c 'mount -t tmpfs -o size=16k tmpfs "$0"' "$tmp/disk" 2>/dev/null; then
  full() { wrap=(unshare "$unshare_flags" sh -c 'mount -t tmpfs -o size=16k tmpfs disk && exec "$@"' sh); }
elif (trap '' XFSZ; ulimit -f 4) 2>/dev/null; then
  echo "| | (no tmpfs here: a file-size limit stands in for the full disk) | |"
  full() { wrap=(bash -c 'trap "" XFSZ; ulimit -f "$0"; exec "$@"' "$1"); }
else
  full() { return 1; }
  echo "| $s | full disk | skipped: neither a tmpfs nor a file-size limit is allowed here |"
fi
if full 1; then
  case_ 1 "full disk while writing the CSV files" $s "${tiny[@]}" --depths 1,2,24 --out disk/o1
  check "the message names a file and the OS error" has "cannot write 'disk/o1/.*': write: \\(No space left on device\\|File too large\\)" err
  check "nothing reported" bash -c '! grep -q "^\\(Plots\\|CSV\\):" out'
  if command -v gnuplot >/dev/null; then
    full 4
    case_ 1 "full disk while gnuplot writes a PNG" $s "${one[@]}" --out disk/o2
    check "the message names the PNG" has "depth_sweep.png" err
    check "no plots reported" bash -c '! grep -q "^Plots:" out'
  fi
  wrap=()
fi
# Memory pressure: a scratch allocation fails under a 3 GB address-space limit.
wrap=(bash -c 'ulimit -v 3000000; exec "$@"' sh)
case_ 1 "out of memory (--points 1048576 under ulimit -v)" $s --points 1048576 --seeds 2 --depths 1 --archs crelu --threads 1 --out "$tmp/m1"
check "the message says out of memory" has "out of memory" err
wrap=()
# Thread creation refused: 200 threads under a limit of 64 processes (as an unprivileged user).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  chmod 777 "$tmp"
  wrap=(setpriv --reuid=65534 --regid=65534 --clear-groups bash -c 'ulimit -u 64; exec "$@"' sh)
  total=$((total + 1))
  (cd "$tmp" && timeout 120 "${wrap[@]}" "$bin/$s" "${one[@]}" --threads 200 --out "$tmp/t1" >"$tmp/out" 2>"$tmp/err")
  rc=$?
  wrap=()
  msg=$(grep -v '^\s*$' "$tmp/err" | grep error | head -1 | sed "s#$tmp#TMP#g" | cut -c1-200)
  if [ "$rc" -eq 0 ] || { [ "$rc" -eq 1 ] && [ -n "$msg" ]; }; then
    echo "| $s | --threads 200 under ulimit -u 64 | exit $rc (0, or 1 with a message): $msg |"
  else
    echo "| $s | --threads 200 under ulimit -u 64 | exit $rc, EXPECTED 0 or 1 with a message |"
    fails=$((fails + 1))
  fi
else
  echo "| $s | --threads 200 under ulimit -u 64 | skipped: needs root to run as an unprivileged user |"
fi
q="quickstart"
# A tiny Fashion-MNIST in the IDX format: 160 training and 20 test images.
mkdir -p "$tmp/fmnist"
python3 - "$tmp/fmnist" <<'PY'
import os, struct, sys
d = sys.argv[1]
for name, n in (("train", 160), ("t10k", 20)):
    with open(f"{d}/{name}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + os.urandom(n * 784))
    with open(f"{d}/{name}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))
PY
case_ 1 "data directory without Fashion-MNIST" $q --data "$tmp/empty" --out "$tmp/q0"
check "the message names the missing file" has "error: .*train-images-idx3-ubyte" err
case_ 0 "--help" $q --help
check "--help: the options on stdout" has "\\-\\-epochs" out
case_ 2 "a positional argument (flags only)" $q "$tmp/fmnist"
case_ 2 "--epochs abc" $q --data "$tmp/fmnist" --epochs abc
check "the message names --epochs" has "^quickstart: --epochs" err
case_ 2 "--epochs 0" $q --data "$tmp/fmnist" --epochs 0
case_ 2 "--seed -1" $q --data "$tmp/fmnist" --seed -1
case_ 2 "--lr 1e308" $q --data "$tmp/fmnist" --lr 1e308
case_ 2 "--out ''" $q --data "$tmp/fmnist" --out ""
case_ 2 "--limit-train 100 (smaller than a batch of 128)" $q --data "$tmp/fmnist" --limit-train 100
check "the message names --limit-train" has "^quickstart: --limit-train" err
cp -r "$tmp/fmnist" "$tmp/fmnist_fifo"
rm "$tmp/fmnist_fifo/t10k-labels-idx1-ubyte"
mkfifo "$tmp/fmnist_fifo/t10k-labels-idx1-ubyte"
case_ 2 "a FIFO as t10k-labels-idx1-ubyte (must not block)" $q --data "$tmp/fmnist_fifo" --out "$tmp/q1"
check "the message names --data and the FIFO" has "^quickstart: --data: .* is a FIFO" err
case_ 0 "(tiny run, --k=v, --json)" $q --data="$tmp/fmnist" --epochs=2 --threads=1 --out="$tmp/q2" --json
check "--json: the last stdout line is JSON with 2 epochs" json_is 'j["epochs"] == 2'
check "progress on stderr, not stdout" bash -c '! grep -q "done:" out && grep -q "epoch 2/2 done" err'
check "log.jsonl: one valid JSON line per epoch" python3 -c 'import json, sys; assert len([json.loads(l) for l in open(sys.argv[1])]) == 2' "$tmp/q2/log.jsonl"
case_ 2 "a second fresh run on the same --out" $q --data "$tmp/fmnist" --epochs 2 --threads 1 --out "$tmp/q2"
echo
if [ "$fails" -eq 0 ]; then
  echo "cli bad inputs: all $total cases gave the expected exit code"
else
  echo "cli bad inputs: $fails of $total cases gave an unexpected exit code"
fi
[ "$fails" -eq 0 ]
