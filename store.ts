/**
 * The storage seam and its stores: where a queue keeps its tasks. A
 * {@linkcode TaskQueue} opens one from its `db` option through
 * {@linkcode openStore}; open one yourself to share it between queues,
 * inspect it, or administer it. One conformance suite holds every store to
 * the same behaviour.
 *
 * @experimental The store interface is not yet a stable API: it may change
 * in a minor version.
 *
 * @example Opening a store and reading its status
 * ```ts
 * import { openStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * const store = await openStore(":memory:");
 * try {
 *   const { counts } = await store.status(Date.now());
 *   assert.equal(counts.queued, 0);
 * } finally {
 *   await store.close();
 * }
 * ```
 *
 * @module
 */
export {
  isPostgresUrl,
  openStore,
  type OpenStoreOptions,
} from "./lib/store/open_store.ts";
export { MemoryTaskStore } from "./lib/store/memory_store.ts";
export {
  SqliteTaskStore,
  type SqliteTaskStoreOptions,
} from "./lib/store/sqlite/sqlite_store.ts";
export {
  SqliteError,
  type SqliteErrorOptions,
  type SqliteOperation,
} from "./lib/store/sqlite/sqlite_error.ts";
export {
  type PostgresDropOptions,
  PostgresTaskStore,
  type PostgresTaskStoreOptions,
  type PostgresTransaction,
  type TransactionInsert,
  type TransactionState,
} from "./lib/store/postgres/postgres_store.ts";
export type {
  CancelOutcome,
  CommitBatch,
  CommitResult,
  InsertAllOptions,
  InsertOutcome,
  ListOptions,
  NewSchedule,
  NewTask,
  PruneResult,
  QueueClaim,
  QueueRetention,
  QueueState,
  QueueStatus,
  Release,
  RemoveOutcome,
  Renewal,
  RetentionPolicy,
  RetentionRule,
  ScheduleFire,
  ScheduleFireOutcome,
  ScheduleRecord,
  ScheduleTask,
  Settlement,
  SettleOutcome,
  Start,
  StateWrite,
  StatusCounts,
  StatusTotals,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./lib/store/store.ts";
