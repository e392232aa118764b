#!/usr/bin/env bash
# A rank that throws, lets an exception escape, is killed, or hangs ends the whole 2-rank job:
# mpirun exits nonzero within a bound (timeout), stderr names the failed rank (for a hang, the
# rank whose watchdog gave up waiting for it), and the run directory's
# checkpoint (written every 4 steps) is intact at step 4, the last before the failure at step 7.
#   failure_test.sh MPIRUN FAILING_RUN WORKDIR
set -u
mpirun=$1 prog=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
bound=60  # seconds: the job must be over well within this (it takes about one)
fail=0
for how in throw escape kill hang; do
  dir="$work/$how" log="$work/$how.log"
  timeout -k 10 "$bound" "$mpirun" --allow-run-as-root --oversubscribe --bind-to none -np 2 \
    "$prog" "$dir" 1 7 "$how" >"$log" 2>&1
  code=$?
  if [ "$code" -eq 124 ] || { [ "$code" -eq 137 ] && [ "$how" != kill ]; }; then
    echo "FAIL $how: the job did not end within $bound s"; fail=1; continue
  fi
  if [ "$code" -eq 0 ]; then
    echo "FAIL $how: mpirun exited 0 although rank 1 failed"; cat "$log"; fail=1; continue
  fi
  case $how in
    kill) pattern='rank 1 .*(signal 9|Killed)' ;;
    hang) pattern='rank 0 of 2\): waited [0-9]+ s in a collective operation' ;;
    *) pattern='rank 1 of 2\).*failure on purpose at step 7' ;;
  esac
  if ! grep -Eq "$pattern" "$log"; then
    echo "FAIL $how: no message naming rank 1 (/$pattern/)"; cat "$log"; fail=1; continue
  fi
  if ! "$prog" --check "$dir" 4 >>"$log" 2>&1; then
    echo "FAIL $how: checkpoint not intact"; cat "$log"; fail=1; continue
  fi
  echo "ok $how: mpirun exited $code, the message names the rank, checkpoint intact at step 4"
done
# The same program without a failure finishes cleanly (so the failures above are the ones made).
timeout -k 10 "$bound" "$mpirun" --allow-run-as-root --oversubscribe --bind-to none -np 2 \
  "$prog" "$work/none" 1 10 none >"$work/none.log" 2>&1 || { echo "FAIL: the run without a failure failed"; cat "$work/none.log"; fail=1; }
[ "$fail" -eq 0 ] && "$prog" --check "$work/none" 40 >/dev/null || fail=1
exit $fail
