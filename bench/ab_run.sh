#!/bin/bash
# Interleaved A/B of two installs of ntkx on the cases of bench/ab_case.py.
# usage: bench/ab_run.sh ROUNDS REPS PYTHON_A PYTHON_B CASE...
# Prints "A|B case median_seconds" per process; A and B alternate, one fresh process each,
# run outside the checkout so each interpreter imports its own install.
R=$1; K=$2; A=$3; B=$4; shift 4
HERE="$(cd "$(dirname "$0")" && pwd)"
for c in "$@"; do for r in $(seq "$R"); do
  echo "A $(cd /tmp && "$A" "$HERE/ab_case.py" "$c" "$K" 2>/dev/null)"
  echo "B $(cd /tmp && "$B" "$HERE/ab_case.py" "$c" "$K" 2>/dev/null)"
done; done
