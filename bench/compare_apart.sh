#!/usr/bin/env bash
# Measures this tree's queue against another revision's, each run in a
# process of its own, the two trees alternating (this, other, other, this,
# …), so that neither shares a JIT or a heap with the other and drift in
# the machine's state hits both alike. Prints each workload's median
# tasks/s per tree and their ratio, and the median CPU time per run of the
# main thread and of the whole process, and their ratios (other / this:
# above 1 when this tree spends less).
#
#   bench/compare_apart.sh [REV] [PAIRS] [MODES]
#   bench/compare_apart.sh 43263dc 10
#   bench/compare_apart.sh 43263dc 10 durable
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-HEAD}"
pairs="${2:-10}"
modes="${3:-dispatch durable}"
other="$(mktemp -d)"
trap 'git worktree remove --force "$other" >/dev/null 2>&1 || rm -rf "$other"' EXIT
git worktree add --detach "$other" "$rev" >/dev/null
echo "this tree: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'); other: $(git -C "$other" rev-parse --short HEAD)"
run() {
  deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
    bench/throughput.ts "$1" "$2"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for mode in $modes; do
  here=()
  there=()
  for ((i = 0; i < pairs; i++)); do
    if ((i % 2 == 0)); then
      here+=("$(run . "$mode")")
      there+=("$(run "$other" "$mode")")
    else
      there+=("$(run "$other" "$mode")")
      here+=("$(run . "$mode")")
    fi
  done
  col() { printf '%s\n' "${@:2}" | cut -d' ' -f"$1" | median; }
  a="$(col 1 "${here[@]}")"
  b="$(col 1 "${there[@]}")"
  awk -v m="$mode" -v a="$a" -v b="$b" -v n="$pairs" 'BEGIN {
    printf "%s: this tree %d tasks/s, other %d tasks/s (medians of %d processes each), ratio %.3f\n", m, a, b, n, a / b
  }'
  for field in 2 3; do
    name="$([ "$field" = 2 ] && echo "main thread" || echo "process")"
    a="$(col "$field" "${here[@]}")"
    b="$(col "$field" "${there[@]}")"
    awk -v m="$mode" -v w="$name" -v a="$a" -v b="$b" 'BEGIN {
      printf "%s: %s CPU per run, this tree %d ms, other %d ms, other / this %.3f\n", m, w, a, b, b / a
    }'
  done
done
