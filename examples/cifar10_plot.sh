#!/usr/bin/env bash
# Plots the learning curves (test accuracy and training loss per epoch) of every
# OUT_DIR/<arch>-<depth>/log.jsonl into OUT_DIR/curves.png and prints a markdown table.
#   bash examples/cifar10_plot.sh OUT_DIR
set -euo pipefail
out=${1:?usage: cifar10_plot.sh OUT_DIR}
tab="$out/table.md"
echo "| arch | depth | epochs | final train loss | final train acc | final test acc | best test acc | s/epoch |" > "$tab"
echo "|---|---|---|---|---|---|---|---|" >> "$tab"
plots_acc=""
plots_loss=""
for log in "$out"/*/log.jsonl; do
  [ -s "$log" ] || continue
  name=$(basename "$(dirname "$log")")
  dat="${log%.jsonl}.dat"
  python3 - "$log" "$dat" "$name" >> "$tab" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if "test_acc" in r]
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(f'{r["epoch"]} {r["train_loss"]} {r["train_acc"]} {r["test_acc"]}\n')
if rows:
    a, d = sys.argv[3].rsplit("-", 1)
    r = rows[-1]
    print(f'| {a} | {d} | {r["epoch"]} | {r["train_loss"]:.3f} | {r["train_acc"]:.3f} | '
          f'{r["test_acc"]:.3f} | {max(x["test_acc"] for x in rows):.3f} | '
          f'{sum(x["seconds"] for x in rows) / len(rows):.0f} |')
PY
  case $name in *-20|*-8|*-14) lt=1;; *-32|*-44|*-56) lt=2;; *) lt=3;; esac  # dash type by depth
  case $name in resnet*) lc=1;; plain_relu*) lc=2;; plain_crelu_ll*) lc=3;; *) lc=4;; esac
  plots_acc="$plots_acc '$dat' using 1:4 with linespoints dt $lt lc $lc lw 2 title '$name',"
  plots_loss="$plots_loss '$dat' using 1:2 with linespoints dt $lt lc $lc lw 2 title '$name',"
done
gnuplot <<GP
set terminal pngcairo size 1200,500 font ',10' noenhanced
set output '$out/curves.png'
set multiplot layout 1,2 title 'CIFAR-10 subset: $(sed 's/options: //' "$out/command.txt" 2>/dev/null | tr -d "'")'
set xlabel 'epoch'
set xtics 1
set ylabel 'test accuracy'
set key bottom right
set grid
plot ${plots_acc%,}
set ylabel 'training loss'
set key top right
plot ${plots_loss%,}
unset multiplot
GP
cat "$tab"
echo "plot: $out/curves.png"
