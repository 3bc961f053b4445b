/**
 * What every task store shares: the status list, empty counts, and the
 * checks on commit batches and list options, so that all stores refuse the
 * same bad input the same way.
 *
 * @module
 */
import type {
  CommitBatch,
  ListOptions,
  StatusCounts,
  TaskStatus,
} from "./store.ts";

/** The error recorded on a task whose last allowed claim's lease expired. */
export const LEASE_EXPIRED_MESSAGE =
  "Cannot finish task: lease expired after final attempt";

/** Every task status, in life-cycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "dead",
];

/**
 * A fresh count of zero for every status.
 *
 * @returns The counts.
 */
export function emptyCounts(): StatusCounts {
  return { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
}

/**
 * Checks a batch's numbers before anything is applied.
 *
 * @param batch The batch.
 * @throws {RangeError} When a field is out of range.
 */
export function validateBatch(batch: CommitBatch): void {
  const { now, leaseMs, claimDue } = batch;
  if (!Number.isFinite(now)) {
    throw new RangeError(
      `Cannot commit: now must be a finite number, got ${now}`,
    );
  }
  if (!Number.isFinite(leaseMs) || leaseMs < 0) {
    throw new RangeError(
      `Cannot commit: leaseMs must be a non-negative finite number, got ${leaseMs}`,
    );
  }
  if (!Number.isSafeInteger(claimDue) || claimDue < 0) {
    throw new RangeError(
      `Cannot commit: claimDue must be a non-negative integer, got ${claimDue}`,
    );
  }
  for (const task of batch.inserts) {
    if (!Number.isSafeInteger(task.maxAttempts) || task.maxAttempts < 1) {
      throw new RangeError(
        `Cannot store task ${task.id}: maxAttempts must be an integer of at least 1, got ${task.maxAttempts}`,
      );
    }
    if (!Number.isFinite(task.runAt)) {
      throw new RangeError(
        `Cannot store task ${task.id}: runAt must be a finite number, got ${task.runAt}`,
      );
    }
  }
  for (const settle of batch.settles) {
    if (
      settle.outcome.kind === "retry" &&
      !Number.isFinite(settle.outcome.runAt)
    ) {
      throw new RangeError(
        `Cannot settle task ${settle.id}: runAt must be a finite number, got ${settle.outcome.runAt}`,
      );
    }
  }
}

/** {@linkcode ListOptions} after checking, with defaults applied. */
export interface CheckedListOptions {
  /** Only this status, or every status. */
  status: TaskStatus | undefined;
  /** At most this many, or no limit. */
  limit: number | undefined;
  /** Skip this many. */
  offset: number;
}

/**
 * Checks list options.
 *
 * @param options The caller's options.
 * @returns The options with defaults applied.
 * @throws {RangeError} When a field is out of range.
 */
export function validateList(options: ListOptions): CheckedListOptions {
  const { status, limit, offset = 0 } = options;
  if (status !== undefined && !TASK_STATUSES.includes(status)) {
    throw new RangeError(
      `Cannot list tasks: status must be one of ${
        TASK_STATUSES.join(", ")
      }, got ${JSON.stringify(status)}`,
    );
  }
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new RangeError(
      `Cannot list tasks: limit must be a non-negative integer, got ${limit}`,
    );
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(
      `Cannot list tasks: offset must be a non-negative integer, got ${offset}`,
    );
  }
  return { status, limit, offset };
}

/**
 * Checks the window of a status read.
 *
 * @param windowMs The window, ms.
 * @throws {RangeError} When it is negative or not finite.
 */
export function validateWindow(windowMs: number): void {
  if (!Number.isFinite(windowMs) || windowMs < 0) {
    throw new RangeError(
      `Cannot read status: windowMs must be a non-negative finite number, got ${windowMs}`,
    );
  }
}
