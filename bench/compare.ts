/**
 * Throughput of this tree's queue against another tree's, measured in one
 * process with the runs interleaved (this, other, other, this, …), so that
 * drift in the machine's state hits both alike. Run by `bench/compare.sh`,
 * which checks the other revision out into a temporary worktree.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
 *   bench/compare.ts OTHER_TREE [ROUNDS]
 * ```
 *
 * Each round runs, on each tree: dispatch (100,000 no-op tasks, memory
 * store, 2 workers × 64, 100 producers each awaiting its result) and
 * durable (20,000 no-op tasks on a fresh SQLite file, 1 worker × 64, 100
 * producers). It prints the median tasks/s of each, and their ratio.
 *
 * The two trees share one isolate, and that tilts dispatch: a tree
 * compared with itself measures about 0.86× (the statically imported copy
 * runs slower than the one imported after it). `bench/compare_apart.sh`
 * runs each tree in processes of its own instead.
 *
 * @module
 */
import { TaskQueue } from "../lib/queue/task_queue.ts";

/** The part of a tree's queue the comparison uses. */
export interface Queue {
  /** Submits a task. */
  submit(task: { type: string }): Promise<{ result: Promise<unknown> }>;
  /** Closes the queue. */
  close(): Promise<unknown>;
}

/** Opens a tree's queue with the given options. */
export type Open = (options: Record<string, unknown>) => Promise<Queue>;

const producers = 100;

/** Finds the other tree's TaskQueue, wherever its layout keeps it. */
export async function otherQueue(tree: string): Promise<Open> {
  for (const path of ["lib/queue/task_queue.ts", "lib/queue.ts"]) {
    const url = new URL(path, `file://${Deno.realPathSync(tree)}/`);
    try {
      await Deno.stat(url);
    } catch {
      continue;
    }
    const module = await import(url.href) as { TaskQueue: { open: Open } };
    return (options) => module.TaskQueue.open(options);
  }
  throw new Error(`Cannot compare: no TaskQueue under ${tree}`);
}

/**
 * One run of a workload on a tree's queue, in tasks/s.
 *
 * @param open Opens the tree's queue.
 * @param durable The durable workload (SQLite), else dispatch (memory).
 * @returns Tasks per second.
 */
export async function tasksPerSecond(
  open: Open,
  durable: boolean,
): Promise<number> {
  const total = durable ? 20_000 : 100_000;
  const dir = await Deno.makeTempDir({ prefix: "sluice-compare-" });
  const queue = await open({
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
  const elapsed = performance.now() - start;
  await queue.close();
  await Deno.remove(dir, { recursive: true });
  return total / elapsed * 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

if (import.meta.main) {
  const [otherTree, roundsText = "8"] = Deno.args;
  if (otherTree === undefined) {
    throw new TypeError("Cannot compare: give the other tree's path");
  }
  const rounds = Number(roundsText);
  const thisOpen: Open = (options) => TaskQueue.open(options) as Promise<Queue>;
  const otherOpen = await otherQueue(otherTree);
  for (const durable of [false, true]) {
    const name = durable ? "durable (SQLite, NORMAL)" : "dispatch (memory)";
    // One warm-up run each, not counted.
    await tasksPerSecond(thisOpen, durable);
    await tasksPerSecond(otherOpen, durable);
    const mine: number[] = [];
    const theirs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0
        ? [[thisOpen, mine], [otherOpen, theirs]] as const
        : [[otherOpen, theirs], [thisOpen, mine]] as const;
      for (const [open, into] of order) {
        into.push(await tasksPerSecond(open, durable));
      }
    }
    const a = median(mine);
    const b = median(theirs);
    Deno.stdout.writeSync(
      new TextEncoder().encode(
        `${name}: this tree ${a.toFixed(0)} tasks/s, other ${
          b.toFixed(0)
        } tasks/s (medians of ${rounds}), ratio ${(a / b).toFixed(3)}\n`,
      ),
    );
  }
}
