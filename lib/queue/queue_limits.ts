/**
 * Per-queue concurrency limits inside one process: at most `limit` tasks of
 * a named queue held here at once (claimed by an insert or a claim, waiting
 * for a worker slot, running, or being settled). Both ways a task becomes
 * this process's respect it: a submission is claimed at insert only while
 * its queue has room, and a claim asks the store for no more of a queue
 * than its room, less what the claim in flight already asked for.
 *
 * @module
 */
import type { QueueClaim } from "../store/store.ts";
import type { TaskTable } from "./task_table.ts";

/** The limits of one queue's process. Owned by the queue. */
export class QueueLimits {
  #queues: readonly QueueClaim[];
  #limits: ReadonlyMap<string, number>;
  #table: TaskTable;
  /** Room the claim in flight asked for, by queue. */
  #pending = new Map<string, number>();

  /**
   * @param queues The queues claimed from, in order.
   * @param limits The limit of each limited queue.
   * @param table The task table, which counts each limited queue's entries.
   * @param onFreed Told when a limited queue's count goes down (room for a
   *   claim).
   */
  constructor(
    queues: readonly string[],
    limits: ReadonlyMap<string, number>,
    table: TaskTable,
    onFreed: (queue: string) => void,
  ) {
    this.#queues = queues.map((queue) => ({ queue }));
    this.#limits = limits;
    this.#table = table;
    if (limits.size > 0) table.countQueues(limits.keys(), onFreed);
  }

  /** Room for one more task of `queue` here now. */
  hasRoom(queue: string): boolean {
    const limit = this.#limits.get(queue);
    return limit === undefined ||
      this.#table.heldIn(queue) + (this.#pending.get(queue) ?? 0) < limit;
  }

  /**
   * The queues of the next claim, each limited queue with its room; the
   * room asked for is held until {@linkcode QueueLimits.claimed}.
   */
  claimQueues(): readonly QueueClaim[] {
    if (this.#limits.size === 0) return this.#queues;
    return this.#queues.map(({ queue }) => {
      const limit = this.#limits.get(queue);
      if (limit === undefined) return { queue };
      const pending = this.#pending.get(queue) ?? 0;
      const room = Math.max(0, limit - this.#table.heldIn(queue) - pending);
      this.#pending.set(queue, pending + room);
      return { queue, limit: room };
    });
  }

  /** The claim in flight came back: what it took is in the table now. */
  claimed(): void {
    this.#pending.clear();
  }
}
