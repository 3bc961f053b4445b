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
 * Prints one line: the best tasks/s, then the CPU time per run of the
 * main thread and of the whole process (workers included), in ms, means
 * of the three runs (`process.threadCpuUsage`, `process.cpuUsage`). On
 * a machine whose cores the workers and the main thread share, the CPU
 * time per task moves far less from process to process than the
 * throughput does.
 *
 * @module
 */

import process from "node:process";
import { otherQueue, tasksPerSecond } from "./compare.ts";

const [tree, mode = "dispatch"] = Deno.args;
if (tree === undefined || (mode !== "dispatch" && mode !== "durable")) {
  throw new TypeError(
    "Cannot measure: give a tree's path and dispatch or durable",
  );
}
const open = await otherQueue(tree);

/** CPU time (user + system) in ms of the main thread and of the process. */
function cpuMs(): [main: number, all: number] {
  const thread = process.threadCpuUsage();
  const all = process.cpuUsage();
  return [
    (thread.user + thread.system) / 1000,
    (all.user + all.system) / 1000,
  ];
}

let best = 0;
let main = 0;
let all = 0;
for (let run = 0; run < 3; run++) {
  const [main0, all0] = cpuMs();
  best = Math.max(best, await tasksPerSecond(open, mode === "durable"));
  const [main1, all1] = cpuMs();
  main += main1 - main0;
  all += all1 - all0;
}
// The one line the comparing script reads.
Deno.stdout.writeSync(
  new TextEncoder().encode(
    `${best.toFixed(0)} ${(main / 3).toFixed(0)} ${(all / 3).toFixed(0)}\n`,
  ),
);
