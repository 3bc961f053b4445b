/**
 * Pool throughput: how many tasks per second the pool moves on its own,
 * and how CPU-bound work scales from one worker to two.
 *
 * @module
 */
import { WorkerPool } from "../lib/pool/worker_pool.ts";

const HANDLERS = new URL("../tests/fixtures/basic.ts", import.meta.url);
const DISPATCH_TASKS = 100_000;
const PRODUCERS = 100;
const FIB_TASKS = 400;
const FIB_N = 27;

async function produce(pool: WorkerPool, total: number): Promise<void> {
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < total) {
      const id = next++;
      const result = await pool.run({
        id: String(id),
        type: "noop",
        payload: id,
        attempt: 1,
        idempotencyKey: null,
      });
      if (!result.ok) throw new Error(result.error.message);
    }
  };
  const producers: Promise<void>[] = [];
  for (let i = 0; i < PRODUCERS; i++) producers.push(producer());
  await Promise.all(producers);
}

async function fibs(pool: WorkerPool, count: number): Promise<void> {
  const runs: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    runs.push(
      pool.run({
        id: String(i),
        type: "fib",
        payload: FIB_N,
        attempt: 1,
        idempotencyKey: null,
      }),
    );
  }
  await Promise.all(runs);
}

Deno.bench({
  name:
    `dispatch ${DISPATCH_TASKS} no-op tasks, 2 workers x 64, ${PRODUCERS} producers`,
  group: "dispatch",
  n: 3,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    const pool = await WorkerPool.start({
      handlers: HANDLERS,
      workers: 2,
      concurrency: 64,
    });
    b.start();
    await produce(pool, DISPATCH_TASKS);
    b.end();
    await pool.close();
  },
});

Deno.bench({
  name: `cpu scaling ${FIB_TASKS} x fib(${FIB_N}), 1 worker`,
  group: "cpu scaling",
  baseline: true,
  n: 1,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    const pool = await WorkerPool.start({ handlers: HANDLERS, workers: 1 });
    b.start();
    await fibs(pool, FIB_TASKS);
    b.end();
    await pool.close();
  },
});

Deno.bench({
  name: `cpu scaling ${FIB_TASKS} x fib(${FIB_N}), 2 workers`,
  group: "cpu scaling",
  n: 1,
  warmup: 1,
  async fn(b: Deno.BenchContext): Promise<void> {
    const pool = await WorkerPool.start({ handlers: HANDLERS, workers: 2 });
    b.start();
    await fibs(pool, FIB_TASKS);
    b.end();
    await pool.close();
  },
});
