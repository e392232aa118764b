#!/usr/bin/env bash
# The Jacobian-spectrum program's contract on a tiny configuration (seconds): it runs for both
# families, writes the CSVs with their exact headers, the looks-linear nets have every singular
# value 1, it works (with a note) without gnuplot, and rejects bad options with exit code 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/examples/jacobian_spectrum
[ -x "$bin" ] || { echo "missing $bin (build the examples first)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" --out "$out/a b'c" --archs plain_crelu_ll,plain_prelu_ll,plain_relu --depths 2,8 --width 16 \
  --seeds 2 --samples 3 --json > "$out/a.log" 2> "$out/a.err"
tail -1 "$out/a.log" | grep -q '^{"family":"mlp"' || { echo "no JSON summary line"; exit 1; }
dir="$out/a b'c"
[ "$(head -1 "$dir/jacobian_spectrum.csv")" = "family,arch,depth,bn,seed,sample,method,index,sigma" ] ||
  { echo "bad jacobian_spectrum.csv header"; exit 1; }
[ "$(head -1 "$dir/jacobian_summary.csv")" = \
  "family,arch,depth,bn,nets,samples,method,rank_fraction,sigma_min,sigma_p10,sigma_median,sigma_p90,sigma_max,mean_sq" ] ||
  { echo "bad jacobian_summary.csv header"; exit 1; }
rows=$(($(wc -l < "$dir/jacobian_spectrum.csv") - 1))
[ "$rows" -eq $((3 * 2 * 2 * 3 * 16)) ] || { echo "expected 576 singular values, got $rows"; exit 1; }
# Orthogonal looks-linear nets are exact isometries: every singular value is 1.
awk -F, '$2 ~ /_ll$/ && ($9 < 1 - 1e-9 || $9 > 1 + 1e-9) { bad = 1 } END { exit bad }' \
  "$dir/jacobian_spectrum.csv" || { echo "a looks-linear singular value is not 1"; exit 1; }
if command -v gnuplot > /dev/null; then
  [ -s "$dir/jacobian_spectrum.png" ] || { echo "missing jacobian_spectrum.png"; exit 1; }
fi

"$bin" --family cifar --out "$out/c" --archs plain_crelu_ll,plain_tat --depths 8 --width 2 \
  --image 8 --seeds 1 --samples 2 --steps 8 --bn on > "$out/c.log" 2>&1
[ "$(grep -c ',lanczos,' "$out/c/jacobian_summary.csv")" -eq 2 ] ||
  { echo "cifar summary rows missing"; cat "$out/c/jacobian_summary.csv"; exit 1; }

# Without gnuplot on the PATH: still exit 0, with a note. (crelu_ll: a former name, still accepted.)
PATH=/nonexistent "$PWD/$bin" --out "$out/d" --archs crelu_ll --depths 2 --width 8 --seeds 1 \
  > "$out/d.log" 2>&1
grep -q "gnuplot not found" "$out/d.log" || { echo "no gnuplot note"; exit 1; }
grep -q "^mlp,plain_crelu_ll,2," "$out/d/jacobian_summary.csv" ||
  { echo "the former name crelu_ll is not reported as plain_crelu_ll"; exit 1; }

"$bin" --help > /dev/null && "$bin" --help | grep -q -- "--family"
for args in "--bogus" "--seeds x" "--family foo" "--archs plain_relu,foo" "--depths 0" \
  "--family cifar --depths 9" "--depths 1,,2" "--samples 1 --archs plain_relu_bn" "--eta 1" \
  "--eta nan" "--threads 0" "--width" "stray"; do
  set +e
  # shellcheck disable=SC2086
  "$bin" --out "$out/e" $args > "$out/e.log" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "jacobian_spectrum $args: exit code $rc, expected 2"; exit 1; }
  grep -q "^usage: jacobian_spectrum" "$out/e.log" || { echo "$args: no usage"; exit 1; }
done
echo "jacobian_spectrum: OK"
