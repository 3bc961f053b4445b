#!/usr/bin/env bash
# Measures this tree's queue against another revision's in one process:
# the other revision is checked out into a temporary git worktree, and
# bench/compare.ts interleaves runs of both (dispatch and durable), then
# prints median tasks/s and their ratio.
#
#   bench/compare.sh [REV] [ROUNDS]
#   bench/compare.sh HEAD~1 8
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-HEAD}"
rounds="${2:-8}"
other="$(mktemp -d)"
trap 'git worktree remove --force "$other" >/dev/null 2>&1 || rm -rf "$other"' EXIT
git worktree add --detach "$other" "$rev" >/dev/null
echo "this tree: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'); other: $(git -C "$other" rev-parse --short HEAD)"
deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
  bench/compare.ts "$other" "$rounds"
