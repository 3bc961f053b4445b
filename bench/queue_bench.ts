/**
 * Questions about the whole queue, one group each:
 *
 * - end to end: the baseline port against the optimized queue (durable
 *   SQLite, 30 ms simulated I/O), 100 tasks from 100 producers each;
 * - dispatch: 100,000 no-op tasks through the queue (memory store);
 * - durable: 20,000 no-op tasks on a SQLite file (1 worker), `synchronous`
 *   NORMAL vs FULL;
 * - duplicate submit: one submission of an idempotency key that already
 *   finished, on a durable queue.
 *
 * Producers submit one task at a time and await its result. Queue start-up
 * and shutdown stay outside the measured part. Tasks/s = tasks ÷ the
 * reported time per iteration.
 *
 * ```sh
 * deno bench --allow-read --allow-write --allow-env --allow-ffi --allow-sys bench/queue_bench.ts
 * ```
 *
 * @module
 */
import { runBaseline } from "../input/baseline.ts";
import { generateTasks } from "../input/generate_tasks.ts";
import { faultyHandlers, SIMULATED_IO_30MS } from "../lib/handlers/faults.ts";
import { TaskQueue } from "../lib/queue/task_queue.ts";
import type { TaskQueueOptions } from "../lib/queue/types.ts";

const PRODUCERS = 100;
const E2E_TASKS = 100;
const DISPATCH_TASKS = 100_000;
const DURABLE_TASKS = 20_000;

const e2eTasks = generateTasks(E2E_TASKS, { seed: 1 });

/** Every producer submits its share one task at a time, awaiting each result. */
async function produce(
  queue: TaskQueue,
  total: number,
  task: (
    i: number,
  ) => { type: string; payload?: unknown; idempotencyKey?: string },
): Promise<void> {
  await Promise.all(
    Array.from({ length: PRODUCERS }, async (_, p) => {
      for (let i = p; i < total; i += PRODUCERS) {
        await (await queue.submit(task(i))).result;
      }
    }),
  );
}

/** Opens a queue (on a fresh SQLite file when `durable`), measures `body`, cleans up. */
async function measured(
  b: Deno.BenchContext,
  options: TaskQueueOptions,
  durable: boolean,
  body: (queue: TaskQueue) => Promise<void>,
): Promise<void> {
  const dir = durable
    ? await Deno.makeTempDir({ prefix: "sluice-bench-" })
    : null;
  const queue = await TaskQueue.open({
    ...options,
    ...(dir !== null && { db: `${dir}/bench.db` }),
    logger: { level: "error" },
  });
  try {
    b.start();
    await body(queue);
    b.end();
  } finally {
    await queue.close();
    if (dir !== null) await Deno.remove(dir, { recursive: true });
  }
}

Deno.bench({
  name: `baseline: ${E2E_TASKS} tasks, ${PRODUCERS} producers`,
  group: "end to end, 30 ms simulated I/O, 100 producers",
  baseline: true,
  n: 3,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    b.start();
    const { processed } = await runBaseline(e2eTasks, { producers: PRODUCERS });
    b.end();
    if (processed !== E2E_TASKS) throw new Error("Cannot bench: lost tasks");
  },
});

Deno.bench({
  name: `optimized (SQLite file): ${E2E_TASKS} tasks, ${PRODUCERS} producers`,
  group: "end to end, 30 ms simulated I/O, 100 producers",
  n: 5,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    await measured(
      b,
      {
        handlers: faultyHandlers(SIMULATED_IO_30MS),
        workers: 2,
        concurrency: 64,
        capacity: 1024,
      },
      true,
      (queue) =>
        produce(queue, E2E_TASKS, (i) => {
          const t = e2eTasks[i]!;
          return {
            type: "noop",
            payload: t,
            idempotencyKey: `${t.image_key}:${t.size}`,
          };
        }),
    );
  },
});

Deno.bench({
  name: `memory store: ${DISPATCH_TASKS.toLocaleString("en-US")} no-op tasks`,
  group: "dispatch",
  baseline: true,
  n: 3,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    await measured(
      b,
      { workers: 2, concurrency: 64, capacity: 1024 },
      false,
      (queue) => produce(queue, DISPATCH_TASKS, () => ({ type: "noop" })),
    );
  },
});

for (const synchronous of ["NORMAL", "FULL"] as const) {
  Deno.bench({
    name: `SQLite file, synchronous ${synchronous}: ${
      DURABLE_TASKS.toLocaleString("en-US")
    } no-op tasks`,
    group: "durable",
    baseline: synchronous === "NORMAL",
    n: 3,
    warmup: 1,
    async fn(b: Deno.BenchContext): Promise<void> {
      await measured(
        b,
        // One worker: on 2 cores the main thread, which owns SQLite, needs
        // a core of its own, and a no-op handler needs little worker time.
        { workers: 1, concurrency: 64, capacity: 1024, synchronous },
        true,
        (queue) => produce(queue, DURABLE_TASKS, () => ({ type: "noop" })),
      );
    },
  });
}

// A database holding one finished task with key "k", made before any bench
// runs. Each iteration opens a producer-only queue on it (no workers, so
// opening is cheap and outside the measured part), warms the statement
// cache with one duplicate submission, then measures a second one.
const duplicateDir = await Deno.makeTempDir({ prefix: "sluice-bench-" });
const duplicateDb = `${duplicateDir}/dup.db`;
{
  await using queue = await TaskQueue.open({
    db: duplicateDb,
    workers: 1,
    logger: { level: "error" },
  });
  await (await queue.submit({ type: "noop", idempotencyKey: "k" })).result;
}
globalThis.addEventListener("unload", () => {
  Deno.removeSync(duplicateDir, { recursive: true });
});

Deno.bench({
  name: "submit of a finished idempotency key (SQLite file)",
  group: "duplicate submit",
  baseline: true,
  n: 500,
  warmup: 20,
  async fn(b: Deno.BenchContext): Promise<void> {
    await using queue = await TaskQueue.open({
      db: duplicateDb,
      consume: false,
      logger: { level: "error" },
    });
    await queue.submit({ type: "noop", idempotencyKey: "k" });
    b.start();
    const handle = await queue.submit({ type: "noop", idempotencyKey: "k" });
    b.end();
    if (!handle.deduplicated) throw new Error("Cannot bench: not a duplicate");
  },
});
