/**
 * A monotonic clock read at most once per run of the microtask queue.
 *
 * `performance.now()` costs about 100 ns in Deno, and the hot path reads a
 * time several times per task (acceptance, dispatch, metrics) while tasks
 * arrive in bursts handled in one turn. Within a burst the first read is
 * kept and reused until the queued microtask clears it, so every task of
 * the burst sees the same time: exact enough for wait times, busy time and
 * rates measured in milliseconds and seconds.
 *
 * @module
 */

let cached: number | undefined;

function clear(): void {
  cached = undefined;
}

/**
 * `performance.now()`, cached until the microtask queue reaches a reset
 * queued on the first read.
 *
 * @returns Milliseconds since the time origin.
 */
export function turnNow(): number {
  if (cached === undefined) {
    cached = performance.now();
    queueMicrotask(clear);
  }
  return cached;
}
