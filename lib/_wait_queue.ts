/**
 * A FIFO of callers waiting for something (a permit, a value), each
 * cancellable through an `AbortSignal`. Shared by the semaphore and the
 * channel.
 *
 * Cancelled waiters stay in the queue as tombstones until they reach the
 * head; the queue is compacted once they outnumber the live waiters, so
 * memory stays within twice the live count and removal is amortized O(1).
 *
 * @module
 */
import { RingBuffer } from "./ring_buffer.ts";

const COMPACT_THRESHOLD = 32;

/** One pending wait. `done` is set once, by whichever of grant, abort or close comes first. */
export class Waiter<T> {
  /** Set when the wait has been granted or cancelled. */
  done = false;
  /** Settles the caller's promise with what it waited for. */
  resolve: (value: T) => void;
  /** Settles the caller's promise with an error. */
  reject: (reason: unknown) => void;
  #signal: AbortSignal | undefined = undefined;
  #onAbort: (() => void) | undefined = undefined;

  /**
   * @param resolve The caller's promise resolver.
   * @param reject The caller's promise rejecter.
   */
  constructor(resolve: (value: T) => void, reject: (reason: unknown) => void) {
    this.resolve = resolve;
    this.reject = reject;
  }

  /** The abort reason, while the waiter is still attached to its signal. */
  get reason(): unknown {
    return this.#signal?.reason;
  }

  /** Calls `onAbort` when `signal` aborts, until `detach`. */
  attach(signal: AbortSignal, onAbort: () => void): void {
    this.#signal = signal;
    this.#onAbort = onAbort;
    signal.addEventListener("abort", onAbort, { once: true });
  }

  /** Removes the abort listener; called once the wait is settled. */
  detach(): void {
    if (this.#onAbort !== undefined) {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      this.#onAbort = undefined;
      this.#signal = undefined;
    }
  }
}

/** Live waiters in arrival order, with cancelled ones skipped. */
export class WaitQueue<T> {
  #queue: RingBuffer<Waiter<T>> = new RingBuffer<Waiter<T>>();
  // Live waiters; `#queue.length - #live` are tombstones.
  #live = 0;

  /** Waiters still waiting. */
  get size(): number {
    return this.#live;
  }

  /**
   * Queues a new wait, cancelled when `signal` aborts: its promise then
   * rejects with the signal's reason and it leaves no trace in the counts.
   *
   * @returns The caller's promise.
   */
  wait(signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter = new Waiter<T>(resolve, reject);
      if (signal !== undefined) {
        waiter.attach(signal, () => this.#cancel(waiter));
      }
      this.#queue.push(waiter);
      this.#live++;
    });
  }

  /**
   * Removes the oldest live waiter, marked done and detached; the caller
   * then resolves or rejects it. Requires `size > 0`.
   *
   * @returns The waiter.
   */
  take(): Waiter<T> {
    let waiter = this.#queue.shift() as Waiter<T>;
    while (waiter.done) waiter = this.#queue.shift() as Waiter<T>;
    waiter.done = true;
    this.#live--;
    waiter.detach();
    // Only tombstones can remain when nobody waits; drop them in one go.
    if (this.#live === 0) this.#queue.clear();
    return waiter;
  }

  #cancel(waiter: Waiter<T>): void {
    if (waiter.done) return;
    waiter.done = true;
    this.#live--;
    const reason = waiter.reason;
    waiter.detach();
    const queued = this.#queue.length;
    if (this.#live === 0) {
      this.#queue.clear();
    } else if (queued > COMPACT_THRESHOLD && queued - this.#live > this.#live) {
      this.#queue.retain((w) => !w.done);
    }
    waiter.reject(reason);
  }
}
