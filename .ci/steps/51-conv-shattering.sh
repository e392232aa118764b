#!/usr/bin/env bash
# The convnet sweep and the 2-D maps on tiny configurations (seconds): `shattering conv --quick`
# writes both CSVs with the exact header, one row per (arch, bn, depth), a looks-linear net
# without batch norm has lag-1 exactly 1 (constant gradient); `shattering plane` writes its CSV,
# the looks-linear map is constant with correlation 1; bad options exit 2 with a usage message.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/examples/shattering
[ -x "$bin" ] || { echo "missing $bin (build the examples first)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" conv --quick --threads 2 --out "$out/conv" > "$out/conv.log" 2> "$out/conv.err"
grep -q "generated" "$out/conv.err" || { echo "--quick must say it probes generated images"; exit 1; }
for f in conv_depth_sweep.csv conv_depth_sweep_random.csv; do
  header=$(head -1 "$out/conv/$f")
  [ "$header" = "arch,depth,bn,points,seeds,lag1_mean,lag1_std,slope_mean,slope_std,verdict" ] ||
    { echo "$f header is '$header'"; exit 1; }
  rows=$(($(wc -l < "$out/conv/$f") - 1))
  [ "$rows" -eq 24 ] || { echo "$f: expected 24 rows (6 archs x 2 bn x 2 depths), got $rows"; exit 1; }
  grep -q '^plain_crelu_ll,14,off,32,3,1,0,,,constant$' "$out/conv/$f" ||
    { echo "$f: plain_crelu_ll without BN must be constant with lag-1 exactly 1"; cat "$out/conv/$f"; exit 1; }
done
if command -v gnuplot > /dev/null; then
  [ -s "$out/conv/conv_depth_sweep.png" ] || { echo "missing conv_depth_sweep.png"; exit 1; }
fi

"$bin" plane --width 8 --points 17 --depths 1,3 --seeds 2 --threads 2 --out "$out/plane" \
  > "$out/plane.log" 2>&1
header=$(head -1 "$out/plane/plane_maps.csv")
[ "$header" = "arch,depth,width,points,seeds,slope_mean,slope_std,corr_mean,corr_min" ] ||
  { echo "plane_maps.csv header is '$header'"; exit 1; }
grep -q '^plain_crelu_ll,3,8,17,2,,,1,1$' "$out/plane/plane_maps.csv" ||
  { echo "plain_crelu_ll map must be constant with correlation 1"; cat "$out/plane/plane_maps.csv"; exit 1; }

for args in "conv --bogus" "conv --depths 9" "conv --archs nope" "conv --bn maybe" "conv --seeds 1" \
  "conv --line x" "plane --archs plain_tanh" "plane --points 4" "plane --depths 0"; do
  set +e
  # shellcheck disable=SC2086
  "$bin" $args --out "$out/bad" > "$out/bad.log" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "shattering $args: exit code $rc, expected 2"; exit 1; }
  grep -q "^usage: shattering" "$out/bad.log" || { echo "shattering $args: no usage message"; exit 1; }
done
echo "convnet shattering and 2-D maps: OK"
