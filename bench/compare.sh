#!/usr/bin/env bash
# Measures this tree against another revision in one `deno bench` run:
# the other revision is checked out into a temporary worktree, and both
# trees' bench files run one after the other in the same process, on the
# same machine state. Only the benches whose names match the filter run.
#
#   bench/compare.sh [REV] [FILTER] [BENCH_FILE]
#   bench/compare.sh HEAD~1 'no-op tasks' bench/queue_bench.ts
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-HEAD}"
filter="${2:-no-op tasks}"
file="${3:-bench/queue_bench.ts}"
old="$(mktemp -d)"
trap 'git worktree remove --force "$old" >/dev/null 2>&1 || rm -rf "$old"' EXIT
git worktree add --detach "$old" "$rev" >/dev/null
echo "this tree: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'); other: $(git -C "$old" rev-parse --short HEAD)"
deno bench --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
  --filter "/${filter}/" "$file" "$old/$file"
