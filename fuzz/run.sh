#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, seeded with valid files from make_seeds.
#   bash fuzz/run.sh [build-dir] [seconds-per-target]     (defaults: build-fuzz, 20)
# Exits non-zero (and leaves the crashing input in the build dir) if any target crashes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$(realpath -m "${1:-$root/build-fuzz}")
secs=${2:-20}
rm -rf "$out/seeds" "$out/corpus"
"$out/make_seeds" "$out/seeds" >/dev/null
declare -A extra=([safetensors]="-dict=$here/safetensors.dict -max_len=4096"
                  [checkpoint]="-dict=$here/safetensors.dict -max_len=8192"
                  [idx]="-max_len=4096" [cifar10]="-max_len=16384")
declare -A seeds=([safetensors]=safetensors [checkpoint]=checkpoint [idx]=idx [cifar10]=cifar10)
status=0
for t in safetensors checkpoint idx cifar10; do
  [ -x "$out/${t}_fuzz" ] || { echo "fuzz: $t not built (see build.sh), skipped"; continue; }
  mkdir -p "$out/corpus/$t"
  start=$(date +%s)
  # shellcheck disable=SC2086
  if (cd "$out" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./${t}_fuzz" "corpus/$t" "seeds/${seeds[$t]}" -max_total_time="$secs" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ${extra[$t]} \
        >"$out/$t.log" 2>&1); then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1 || true)
    echo "fuzz: $t ok: $runs runs in $(( $(date +%s) - start )) s, $cov, corpus $(ls "$out/corpus/$t" | wc -l) files"
  else
    echo "fuzz: $t FAILED (log: $out/$t.log)"
    tail -40 "$out/$t.log"
    status=1
  fi
done
rm -f /tmp/shatter_fuzz_*
exit $status
