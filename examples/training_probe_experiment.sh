#!/usr/bin/env bash
# Shattering during training: resnet, plain_relu, plain_crelu and plain_crelu_ll at one depth,
# trained with identical options on a subset of CIFAR-10 while `cifar10 --probe-every` probes them
# on lines between fixed test images; then a gnuplot PNG of lag-1, spectral slope, input-gradient
# norm and unit activity against step, and a table of the first and last probes.
#   bash examples/training_probe_experiment.sh BUILD_DIR OUT_DIR [extra cifar10 options...]
# Probe logs: OUT_DIR/<arch>/probe.jsonl; plot: OUT_DIR/training_probe.png.
# Environment: DEPTH (default 56), ARCHS (default the four above), COMMON (shared options),
# PLOT_ONLY=1 (only the table and the plot, from the logs already in OUT_DIR).
set -euo pipefail
build=${1:?usage: training_probe_experiment.sh BUILD_DIR OUT_DIR [options]}
out=${2:?usage: training_probe_experiment.sh BUILD_DIR OUT_DIR [options]}
shift 2
extra=("$@")
bin="$build/examples/cifar10"
depth=${DEPTH:-56}
archs=${ARCHS:-plain_crelu_ll plain_crelu resnet plain_relu}
common=${COMMON:---limit-train 1600 --limit-test 200 --epochs 1 --batch 16 --lr 0.05 --warmup 0.2 --seed 1 --probe-every 10 --probe-lines 2 --probe-points 64}
mkdir -p "$out"
[ -n "${PLOT_ONLY:-}" ] || echo "depth $depth; options: $common $*" > "$out/command.txt"
for arch in $archs; do
  [ -z "${PLOT_ONLY:-}" ] || break
  dir="$out/$arch"
  mkdir -p "$dir"
  echo "$(date -u +%T) start $arch" >> "$out/progress.txt"
  # shellcheck disable=SC2086
  "$bin" --arch "$arch" --depth "$depth" --threads 2 $common "${extra[@]}" --out "$dir" \
    > "$dir/stdout.txt" 2> "$dir/stderr.txt" || echo "$arch exited with $?" >> "$out/progress.txt"
  echo "$(date -u +%T) done  $arch" >> "$out/progress.txt"
done

# One CSV per architecture (step, lag1, slope, grad_norm, active, coactive) from its probe.jsonl.
for arch in $archs; do
  [ -s "$out/$arch/probe.jsonl" ] || continue
  sed -E 's/.*"step":([0-9]+).*"lag1_mean":([^,]*).*"slope_mean":([^,]*).*"grad_norm":([^,]*).*"active":([^,]*).*"coactive":([^,]*).*/\1,\2,\3,\4,\5,\6/; s/null/NaN/g' \
    "$out/$arch/probe.jsonl" > "$out/$arch.csv"
done
printf '| arch | step | lag-1 | slope | grad norm | active | co-active |\n|---|---|---|---|---|---|---|\n'
for arch in $archs; do
  [ -s "$out/$arch.csv" ] || continue
  for row in "$(head -1 "$out/$arch.csv")" "$(tail -1 "$out/$arch.csv")"; do
    IFS=, read -r s l sl g a c <<< "$row"
    printf '| %s | %s | %.3f | %.2f | %.3g | %.3f | %.3f |\n' "$arch" "$s" "$l" "$sl" "$g" "$a" "$c" 2>/dev/null ||
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$arch" "$s" "$l" "$sl" "$g" "$a" "$c"
  done
done
command -v gnuplot > /dev/null || { echo "gnuplot not found: no PNG"; exit 0; }
{
  echo "set datafile separator ','"
  echo "set terminal pngcairo noenhanced size 1400,900 font ',10'"
  echo "set output '$out/training_probe.png'"
  echo "set multiplot layout 2,2 title 'Shattering during training: depth-$depth CIFAR convnets ($common)'"
  echo "set xlabel 'step'; set key bottom right"
  i=0
  for panel in "2:lag-1 autocorrelation of the input gradient:[-0.1:1.05]" \
    "3:spectral slope (brown -2, white 0):[-3:1.5]" "4:mean input-gradient norm (log scale):[*:*]" \
    "6:co-active proportion (dashed lines - active):[0:1]"; do
    IFS=: read -r col title range <<< "$panel"
    echo "set title '$title'; set yrange $range"
    if [ "$col" = 4 ]; then echo "set logscale y"; else echo "unset logscale y"; fi
    plot="plot "
    i=0
    for arch in $archs; do
      [ -s "$out/$arch.csv" ] || continue
      i=$((i + 1))
      plot+="'$out/$arch.csv' using 1:$col with linespoints lc $i pt 7 ps 0.5 title '$arch', "
      [ "$col" = 6 ] && plot+="'$out/$arch.csv' using 1:5 with lines lc $i dt 2 notitle, "
    done
    echo "${plot%, }"
  done
  echo "unset multiplot"
} > "$out/training_probe.gp"
gnuplot "$out/training_probe.gp"
echo "plot: $out/training_probe.png"
