/**
 * One tree's queue throughput, in a process of its own: the best of three
 * runs of one workload, in tasks/s. `bench/compare_apart.sh` runs it for
 * two trees in alternation; `bench/compare.ts` measures both in one
 * process instead.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
 *   bench/throughput.ts TREE dispatch|durable
 * ```
 *
 * dispatch: 100,000 no-op tasks, memory store, 2 workers × 64, 100
 * producers each awaiting its result. durable: 20,000 no-op tasks on a
 * fresh SQLite file, 1 worker × 64, 100 producers.
 *
 * @module
 */

import { otherQueue, tasksPerSecond } from "./compare.ts";

const [tree, mode = "dispatch"] = Deno.args;
if (tree === undefined || (mode !== "dispatch" && mode !== "durable")) {
  throw new TypeError(
    "Cannot measure: give a tree's path and dispatch or durable",
  );
}
const open = await otherQueue(tree);
let best = 0;
for (let run = 0; run < 3; run++) {
  best = Math.max(best, await tasksPerSecond(open, mode === "durable"));
}
// The one line the comparing script reads.
Deno.stdout.writeSync(new TextEncoder().encode(`${best.toFixed(0)}\n`));
