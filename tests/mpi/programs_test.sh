#!/usr/bin/env bash
# quickstart runs unchanged under mpirun: on 2 ranks it prints its summary once (rank 0), one
# epoch summary on stderr, writes one log line, and reaches the test accuracy of one process with
# the same global batch; a process alone then finds the 2-rank run finished. Skipped (77) without
# Debian's Fashion-MNIST.
#   programs_test.sh MPIRUN QUICKSTART WORKDIR
set -u
mpirun=$1 quick=$2 work=$3
data=/usr/share/datasets/fashion-mnist
if [ ! -e "$data/train-images-idx3-ubyte" ] && [ ! -e "$data/train-images-idx3-ubyte.gz" ]; then
  echo "skipped: no Fashion-MNIST in $data (apt-get install dataset-fashion-mnist)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
args=(--epochs 1 --limit-train 512 --limit-test 200 --threads 1)
fail() { echo "FAIL: $*"; for f in "$work"/*.out "$work"/*.err; do echo "== $f"; cat "$f"; done; exit 1; }
"$quick" "${args[@]}" --out "$work/one" >"$work/one.out" 2>"$work/one.err" || fail "alone: exit $?"
timeout -k 10 120 "$mpirun" --allow-run-as-root --oversubscribe --bind-to none -np 2 \
  "$quick" "${args[@]}" --out "$work/two" >"$work/two.out" 2>"$work/two.err" || fail "2 ranks: exit $?"
[ "$(wc -l <"$work/two.out")" -eq 1 ] || fail "2 ranks: stdout is not one line"
[ "$(grep -c '^epoch 1/1 done' "$work/two.err")" -eq 1 ] || fail "2 ranks: not one epoch summary"
[ "$(wc -l <"$work/two/log.jsonl")" -eq 1 ] || fail "2 ranks: log.jsonl is not one line"
strip() { sed 's/ ([0-9]* s)$//' "$1"; }
[ "$(strip "$work/one.out")" = "$(strip "$work/two.out")" ] || fail "2 ranks: another test accuracy"
"$quick" "${args[@]}" --out "$work/two" --resume >"$work/again.out" 2>"$work/again.err" ||
  fail "alone on the 2-rank run: exit $?"
grep -q "already finished" "$work/again.err" || fail "alone on the 2-rank run: not finished"
echo "ok: $(cat "$work/two.out")"
