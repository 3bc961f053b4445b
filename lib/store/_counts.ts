/**
 * The arithmetic of the kept counts, in one place: every change of status
 * is a move from one status to another (from none: an insert; to none: a
 * delete), and a move changes the counts and totals the same way in every
 * store. PostgreSQL does the same sums in SQL (`postgresQueries().count`).
 *
 * @module
 */
import type { StatusCounts, StatusTotals, TaskStatus } from "./store.ts";
import { emptyCounts, TASK_STATUSES } from "./_shared.ts";

/**
 * Counts by status and monotonic totals, changed only by
 * {@linkcode StatusTally.move} (and set by {@linkcode StatusTally.recount}). The memory store keeps its counts in one;
 * the SQLite store gathers a transaction's net change in a fresh one and
 * adds it to the stored counts with one statement.
 */
export class StatusTally {
  /** Tasks by status (a net change, in a tally of one transaction). */
  readonly counts: StatusCounts = emptyCounts();
  /** Tasks inserted, and moves into `succeeded` and `dead`. */
  readonly totals: StatusTotals = { submitted: 0, succeeded: 0, dead: 0 };
  #moved = false;

  /**
   * Records `k` tasks moving from `was` to `now`.
   *
   * @param was The status they left, or `null` for tasks inserted.
   * @param now The status they entered, or `null` for tasks deleted.
   * @param k How many tasks.
   */
  move(was: TaskStatus | null, now: TaskStatus | null, k = 1): void {
    if (k === 0 || was === now) return;
    this.#moved = true;
    if (was === null) this.totals.submitted += k;
    else this.counts[was] -= k;
    if (now === null) return;
    this.counts[now] += k;
    if (now === "succeeded" || now === "dead") this.totals[now] += k;
  }

  /**
   * Sets the counts to the statuses given (one per task held); the totals,
   * which are history, stay.
   *
   * @param statuses The status of every task.
   */
  recount(statuses: Iterable<TaskStatus>): void {
    const counts = emptyCounts();
    for (const status of statuses) counts[status]++;
    Object.assign(this.counts, counts);
  }

  /** Whether any move was recorded. */
  get moved(): boolean {
    return this.#moved;
  }
}

/**
 * The counts and totals a durable store keeps as rows: per status, the
 * tasks in it (`n`) and the moves into it ever (`entered`, read for the
 * succeeded and dead totals), and a `submitted` row whose `entered` totals
 * the inserts.
 *
 * @param rows `[key, n, entered]` per row (a key seen twice adds up).
 * @returns The counts and totals; keys not known are ignored.
 */
export function keptCounts(
  rows: Iterable<readonly [key: string, n: number, entered: number]>,
): { counts: StatusCounts; totals: StatusTotals } {
  const counts = emptyCounts();
  const totals: StatusTotals = { submitted: 0, succeeded: 0, dead: 0 };
  for (const [key, n, entered] of rows) {
    if ((TASK_STATUSES as readonly string[]).includes(key)) {
      counts[key as TaskStatus] += n;
    }
    if (key === "submitted" || key === "succeeded" || key === "dead") {
      totals[key] += entered;
    }
  }
  return { counts, totals };
}
