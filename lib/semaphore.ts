/**
 * A counting semaphore with first-in, first-out waiters and cancellable
 * waits.
 *
 * @module
 */

import { WaitQueue } from "./_wait_queue.ts";

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A counting semaphore. `acquire` takes a permit or waits for one; waiters
 * are served strictly in arrival order, and `release` hands permits straight
 * to them. Nothing polls and no timers are used.
 *
 * Invariant: permits are only ever `available` while nobody is waiting, so
 * `available > 0` implies `waiting === 0`.
 *
 * @example Limiting concurrency to two
 * ```ts
 * import { Semaphore } from "@sluice/sluice/semaphore";
 * import assert from "node:assert/strict";
 *
 * const semaphore = new Semaphore(2);
 * let running = 0;
 * let peak = 0;
 * await Promise.all([1, 2, 3, 4].map(async () => {
 *   await semaphore.acquire();
 *   try {
 *     peak = Math.max(peak, ++running);
 *     await Promise.resolve();
 *   } finally {
 *     running--;
 *     semaphore.release();
 *   }
 * }));
 * assert.equal(peak, 2);
 * assert.equal(semaphore.available, 2);
 * ```
 */
export class Semaphore {
  #available: number;
  #waiters: WaitQueue<void> = new WaitQueue<void>();

  /**
   * Creates a semaphore holding `permits` permits.
   *
   * @param permits The number of permits available at the start.
   * @throws {TypeError} If `permits` is not a number.
   * @throws {RangeError} If `permits` is not an integer >= 0.
   *
   * @example Creating a semaphore with no free permit
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(0);
   * assert.equal(semaphore.tryAcquire(), false);
   * ```
   */
  constructor(permits: number) {
    if (typeof permits !== "number") {
      throw new TypeError(
        `Cannot create semaphore: permits must be a number, received ${typeof permits}`,
      );
    }
    if (!Number.isSafeInteger(permits) || permits < 0) {
      throw new RangeError(
        `Cannot create semaphore: permits must be an integer >= 0, received ${permits}`,
      );
    }
    this.#available = permits;
  }

  /**
   * The number of permits that can be taken without waiting.
   *
   * @returns The free permit count.
   *
   * @example Reading the free permits
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(3);
   * semaphore.tryAcquire();
   * assert.equal(semaphore.available, 2);
   * ```
   */
  get available(): number {
    return this.#available;
  }

  /**
   * The number of `acquire` calls still waiting. Aborted waits are not
   * counted.
   *
   * @returns The waiter count.
   *
   * @example Counting waiters
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(0);
   * const pending = semaphore.acquire();
   * assert.equal(semaphore.waiting, 1);
   * semaphore.release();
   * await pending;
   * assert.equal(semaphore.waiting, 0);
   * ```
   */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Takes a permit, waiting in line for one if none is free.
   *
   * If `signal` aborts before a permit is granted, the wait leaves the line
   * and the promise rejects with `signal.reason`; no permit is taken. If a
   * permit was granted first, the promise resolves even if the signal aborts
   * afterwards, and the caller owns that permit. The abort listener is
   * removed as soon as the wait settles.
   *
   * @param signal Cancels the wait.
   * @returns A promise that resolves once the caller holds a permit.
   * @throws {unknown} `signal.reason` (as a rejection) if the signal is
   * already aborted or aborts while waiting.
   *
   * @example Waiting with a timeout
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(0);
   * await assert.rejects(
   *   semaphore.acquire(AbortSignal.timeout(10)),
   *   { name: "TimeoutError" },
   * );
   * assert.equal(semaphore.waiting, 0);
   * assert.equal(semaphore.available, 0);
   * ```
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#available > 0) {
      this.#available--;
      return RESOLVED;
    }
    return this.#waiters.wait(signal);
  }

  /**
   * Takes a permit if one is free, without waiting.
   *
   * @returns `true` if a permit was taken, `false` if none was free.
   *
   * @example Trying for a permit
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(1);
   * assert.equal(semaphore.tryAcquire(), true);
   * assert.equal(semaphore.tryAcquire(), false);
   * ```
   */
  tryAcquire(): boolean {
    if (this.#available > 0) {
      this.#available--;
      return true;
    }
    return false;
  }

  /**
   * Returns `n` permits. Each goes straight to the longest waiting caller,
   * in arrival order; what is left over becomes available.
   *
   * @param n The number of permits to return.
   * @throws {RangeError} If `n` is not an integer >= 0.
   *
   * @example Waking two waiters at once
   * ```ts
   * import { Semaphore } from "@sluice/sluice/semaphore";
   * import assert from "node:assert/strict";
   *
   * const semaphore = new Semaphore(0);
   * const waits = [semaphore.acquire(), semaphore.acquire()];
   * semaphore.release(3);
   * await Promise.all(waits);
   * assert.equal(semaphore.available, 1);
   * ```
   */
  release(n = 1): void {
    if (n === 1 && this.#waiters.size === 0) {
      this.#available++;
      return;
    }
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(
        `Cannot release permits: n must be an integer >= 0, received ${n}`,
      );
    }
    while (n > 0 && this.#waiters.size > 0) {
      this.#waiters.take().resolve();
      n--;
    }
    this.#available += n;
  }
}
