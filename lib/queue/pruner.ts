/**
 * Retention: finished tasks leave the store once the policy no longer keeps
 * them, in the background, a small batch at a time. Each batch is one short
 * transaction, and the next waits for the event loop to turn, so the hot
 * path is never held up by more than one batch. On a PostgreSQL schema
 * shared by many processes only one prunes at a time (the store skips the
 * others).
 *
 * @module
 */
import { delay } from "../_delay.ts";
import type { RetentionPolicy, TaskStore } from "../store/store.ts";
import type { TaskEvents } from "./events.ts";

/** Options of the {@linkcode Pruner}. */
export interface PrunerOptions {
  /** What to keep. */
  policy: RetentionPolicy;
  /** Milliseconds between pruning rounds. */
  intervalMs: number;
  /** Tasks deleted per transaction. */
  batchSize: number;
  /** Epoch-ms clock. */
  now: () => number;
}

/** Prunes finished tasks in the background. Owned by the queue. */
export class Pruner {
  #store: TaskStore;
  #events: TaskEvents;
  #options: PrunerOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | null = null;
  #stopped = false;

  /**
   * @param store The store to prune.
   * @param events Where each round's deletions are reported.
   * @param options Policy, pace and clock.
   */
  constructor(store: TaskStore, events: TaskEvents, options: PrunerOptions) {
    this.#store = store;
    this.#events = events;
    this.#options = options;
  }

  /** Starts pruning: a first round soon, then one per interval. */
  start(): void {
    this.#schedule(0);
  }

  /** Stops after the batch in progress; resolves when it is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  /**
   * Prunes until nothing more is due (or the store says another process
   * is pruning), one batch per turn of the event loop.
   *
   * @returns What this round deleted.
   */
  async round(): Promise<{ succeeded: number; dead: number }> {
    const total = { succeeded: 0, dead: 0 };
    const { policy, batchSize } = this.#options;
    while (!this.#stopped) {
      const result = await this.#store.prune(
        policy,
        this.#options.now(),
        batchSize,
      );
      total.succeeded += result.succeeded;
      total.dead += result.dead;
      if (result.skipped || result.succeeded + result.dead < batchSize) break;
      // Let the hot path's timers and messages run between batches.
      await delay(0);
    }
    if (total.succeeded + total.dead > 0) {
      this.#events.emit("pruned", total);
    }
    return total;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#round = this.round().then(
        () => {},
        (error) =>
          this.#events.emit("store_error", {
            operation: "prune",
            error: String(error),
          }),
      ).finally(() => {
        this.#round = null;
        this.#schedule(this.#options.intervalMs);
      });
    }, delayMs);
  }
}
