/**
 * A faithful port of the original, slow design that Sluice is measured
 * against. Its flaws are deliberate (see `input/notes.md`):
 *
 * - the queue is a module-level, unbounded array;
 * - one global async mutex is held while popping a task AND while
 *   processing it, so the 4 consumers run one task at a time;
 * - producers take the same mutex to push, so they wait behind processing;
 * - an empty queue is polled;
 * - processing is 30 ms of simulated blocking I/O (a timer, no jitter);
 * - no idempotency, no retries, no metrics.
 *
 * Run directly, it processes `input/sample_tasks_small.json`:
 *
 * ```sh
 * deno run --allow-read input/baseline.ts
 * ```
 *
 * @module
 */

/** A task of the original design: an image and the variant size wanted. */
export interface BaselineTask {
  /** Source object key, e.g. `img/a.jpg`. */
  image_key: string;
  /** Variant size, e.g. `200x200`. */
  size: string;
}

/** Options for {@linkcode runBaseline}. */
export interface BaselineOptions {
  /**
   * Producers pushing concurrently; the task list is dealt round-robin.
   *
   * @default {1}
   */
  producers?: number;
  /**
   * Consumers popping concurrently (they serialize on the lock anyway).
   *
   * @default {4}
   */
  consumers?: number;
  /**
   * Simulated I/O per task, in milliseconds.
   *
   * @default {30}
   */
  processMs?: number;
  /**
   * Called when a task has been processed, with the time it was handed to
   * its producer and the time processing ended (`performance.now()`). An
   * observation point for benchmarks, not part of the original design.
   */
  onProcessed?: (
    task: BaselineTask,
    enqueuedAt: number,
    doneAt: number,
  ) => void;
  /**
   * Called after every push to and every pop from the queue array, with
   * its new length and the time (`performance.now()`). An observation
   * point for benchmarks (queue depth), not part of the original design.
   */
  onDepth?: (depth: number, at: number) => void;
}

/** What {@linkcode runBaseline} reports. */
export interface BaselineResult {
  /** Tasks processed. */
  processed: number;
  /** Wall time from the first push to the last completion, in seconds. */
  seconds: number;
}

/**
 * The original design's lock: an async mutex whose waiters queue in an
 * array (FIFO through `Array.shift`, as it was).
 */
export class AsyncMutex {
  #locked = false;
  #waiters: Array<() => void> = [];

  /** Resolves once the caller holds the lock. */
  lock(): Promise<void> {
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Releases the lock, handing it to the next waiter if there is one. */
  unlock(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#locked = false;
  }
}

interface Queued {
  task: BaselineTask;
  enqueuedAt: number;
}

// The original's globals: one unbounded array and one lock for everything.
const queue: Queued[] = [];
const lock = new AsyncMutex();

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** 30 ms of "I/O": the original slept while holding the lock. */
function processTask(_task: BaselineTask, processMs: number): Promise<void> {
  return delay(processMs);
}

/**
 * Pushes `tasks` from `producers` concurrent producers into the global
 * array and processes them with the original lock-everything consumers.
 *
 * @param tasks The tasks to process.
 * @param options Producers, consumers, processing time and an observer.
 * @returns How many tasks were processed and how long it took.
 * @throws {RangeError} When a count is not a positive integer.
 */
export async function runBaseline(
  tasks: readonly BaselineTask[],
  options: BaselineOptions = {},
): Promise<BaselineResult> {
  const producers = options.producers ?? 1;
  const consumers = options.consumers ?? 4;
  const processMs = options.processMs ?? 30;
  for (
    const [name, value] of [["producers", producers], [
      "consumers",
      consumers,
    ]] as const
  ) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot run baseline: ${name} must be a positive integer, got ${value}`,
      );
    }
  }
  if (!(processMs >= 0)) {
    throw new RangeError(
      `Cannot run baseline: processMs must be >= 0, got ${processMs}`,
    );
  }
  const onProcessed = options.onProcessed;
  const onDepth = options.onDepth;
  queue.length = 0;
  let produced = 0;
  let processed = 0;
  const start = performance.now();

  const producer = async (index: number): Promise<void> => {
    for (let i = index; i < tasks.length; i += producers) {
      const task = tasks[i]!;
      const enqueuedAt = performance.now();
      await lock.lock();
      queue.push({ task, enqueuedAt });
      onDepth?.(queue.length, performance.now());
      lock.unlock();
      produced++;
    }
  };

  const consumer = async (): Promise<void> => {
    while (processed < tasks.length) {
      await lock.lock();
      const item = queue.shift();
      if (item === undefined) {
        lock.unlock();
        if (produced >= tasks.length && queue.length === 0) return;
        await delay(1);
        continue;
      }
      onDepth?.(queue.length, performance.now());
      try {
        // The flaw that matters: processing happens while holding the lock.
        await processTask(item.task, processMs);
        processed++;
        onProcessed?.(item.task, item.enqueuedAt, performance.now());
      } finally {
        lock.unlock();
      }
    }
  };

  await Promise.all([
    ...Array.from({ length: producers }, (_, i) => producer(i)),
    ...Array.from({ length: consumers }, () => consumer()),
  ]);
  return { processed, seconds: (performance.now() - start) / 1000 };
}

if (import.meta.main) {
  const url = new URL("./sample_tasks_small.json", import.meta.url);
  const tasks = JSON.parse(await Deno.readTextFile(url)) as BaselineTask[];
  const { processed, seconds } = await runBaseline(tasks);
  const rate = processed / seconds;
  // deno-lint-ignore no-console
  console.log(
    `done in ${seconds.toFixed(3)} sec (${processed} tasks, ${
      rate.toFixed(1)
    } tasks/s)`,
  );
}
