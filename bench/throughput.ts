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

interface Queue {
  submit(task: { type: string }): Promise<{ result: Promise<unknown> }>;
  close(): Promise<unknown>;
}

const [tree, mode = "dispatch"] = Deno.args;
if (tree === undefined || (mode !== "dispatch" && mode !== "durable")) {
  throw new TypeError(
    "Cannot measure: give a tree's path and dispatch or durable",
  );
}
const { TaskQueue } = await import(
  new URL("lib/queue/task_queue.ts", `file://${Deno.realPathSync(tree)}/`)
    .href
) as {
  TaskQueue: { open(options: Record<string, unknown>): Promise<Queue> };
};
const durable = mode === "durable";
const total = durable ? 20_000 : 100_000;
const producers = 100;
let best = 0;
for (let run = 0; run < 3; run++) {
  const dir = await Deno.makeTempDir({ prefix: "sluice-throughput-" });
  const queue = await TaskQueue.open({
    ...(durable ? { db: `${dir}/bench.db`, workers: 1 } : { workers: 2 }),
    concurrency: 64,
    capacity: 1024,
    logger: { level: "error" },
  });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async (_, p) => {
      for (let i = p; i < total; i += producers) {
        await (await queue.submit({ type: "noop" })).result;
      }
    }),
  );
  best = Math.max(best, total / (performance.now() - start) * 1000);
  await queue.close();
  await Deno.remove(dir, { recursive: true });
}
// The one line the comparing script reads.
Deno.stdout.writeSync(new TextEncoder().encode(`${best.toFixed(0)}\n`));
