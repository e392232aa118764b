#!/usr/bin/env bash
# The main demo's contract on a tiny configuration (seconds): it runs, writes the depth-sweep CSV
# with the exact header, works (with a note) without gnuplot, and rejects bad options with a
# usage message and exit code 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/examples/shattering
[ -x "$bin" ] || { echo "missing $bin (build the examples first)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
small=(--seeds 2 --width 16 --points 32 --depths 1,2,24 --threads 2)

"$bin" --out "$out/a" "${small[@]}" > "$out/a.log"
header=$(head -1 "$out/a/depth_sweep.csv")
[ "$header" = "arch,depth,width,points,seeds,lag1_mean,lag1_std,slope_mean,slope_std,verdict" ] ||
  { echo "depth_sweep.csv header is '$header'"; exit 1; }
rows=$(($(wc -l < "$out/a/depth_sweep.csv") - 1))
[ "$rows" -eq 24 ] || { echo "expected 24 rows (8 archs x 3 depths), got $rows"; exit 1; }
grep -q '^plain_crelu_ll,24,16,32,2,1,0,,,constant$' "$out/a/depth_sweep.csv" ||
  { echo "plain_crelu_ll must be constant with lag-1 exactly 1"; cat "$out/a/depth_sweep.csv"; exit 1; }
grep -q '^plain_prelu_ll,24,16,32,2,1,0,,,constant$' "$out/a/depth_sweep.csv" ||
  { echo "plain_prelu_ll must be constant with lag-1 exactly 1"; cat "$out/a/depth_sweep.csv"; exit 1; }
archs=$(tail -n +2 "$out/a/depth_sweep.csv" | cut -d, -f1 | sort -u | paste -sd,)
[ "$archs" = "plain_crelu,plain_crelu_ll,plain_prelu_ll,plain_relu,plain_relu_bn,plain_tat,resnet,resnet_bn" ] ||
  { echo "depth_sweep.csv names the architectures $archs"; exit 1; }
for f in depth_sweep_theory.csv figure1_gradients.csv figure2_acf.csv figure3_activity.csv plots.gp; do
  [ -s "$out/a/$f" ] || { echo "missing $f"; exit 1; }
done
if command -v gnuplot > /dev/null; then
  for f in figure1.png figure1_without_bn.png figure2.png figure3.png depth_sweep.png; do
    [ -s "$out/a/$f" ] || { echo "missing $f"; exit 1; }
  done
fi

# Without gnuplot on the PATH: still exit 0, with a note on stderr.
mkdir -p "$out/bin"
ln -s "$(command -v bash)" "$out/bin/bash"
ln -s "$(command -v sh)" "$out/bin/sh"
# (crelu_ll: a former name, still accepted, reported under its current name)
PATH="$out/bin" "$PWD/$bin" --out "$out/b" --archs crelu_ll --depths 2 --seeds 2 --width 8 \
  --points 16 > "$out/b.log" 2>&1
grep -q "gnuplot not found" "$out/b.log" || { echo "no gnuplot note"; cat "$out/b.log"; exit 1; }
grep -q '^plain_crelu_ll,2,' "$out/b/depth_sweep.csv" ||
  { echo "the former name crelu_ll is not reported as plain_crelu_ll"; exit 1; }

# Float overflow (a 1000-block resnet without BN grows like 2^(L/2)): reported, exit code 1.
set +e
"$bin" --out "$out/d" --archs resnet --depths 1000,2 --seeds 2 --width 16 --points 32 \
  > "$out/d.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "overflow run: exit code $rc, expected 1"; cat "$out/d.log"; exit 1; }
grep -q '^resnet,1000,16,32,2,,,,,non-finite$' "$out/d/depth_sweep.csv" ||
  { echo "overflow row missing"; cat "$out/d/depth_sweep.csv"; exit 1; }
grep -q "not finite" "$out/d.log" || { echo "no non-finite message"; exit 1; }

# Bad options and values: usage message, exit code 2.
for args in "--bogus 1" "--seeds 1" "--seeds x" "--points 4" "--depths 0" "--depths 1,,2" \
  "--archs fnn_tanh" "--threads 0" "--bias-std -1" "--bn-grad sometimes" "--width" "stray"; do
  set +e
  # shellcheck disable=SC2086
  "$bin" --out "$out/c" $args > "$out/c.log" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "shattering $args: exit code $rc, expected 2"; exit 1; }
  grep -q "^usage: shattering" "$out/c.log" || { echo "shattering $args: no usage message"; exit 1; }
done
echo "shattering demo: OK"
