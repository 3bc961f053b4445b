/**
 * Sluice: a Deno-native task queue. Web Workers form the thread pool, a
 * bounded channel on a counting semaphore sits in front of it, and SQLite
 * (or PostgreSQL) holds the state: idempotency keys, retries with backoff,
 * and a dead-letter queue.
 *
 * @example Running tasks on the built-in handlers, durably
 * ```ts
 * import { TaskQueue } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using queue = await TaskQueue.open({
 *     db: `${dir}/tasks.db`, // SQLite; omit for an in-memory queue
 *     workers: 2,
 *     capacity: 1024, // bounded channel; overflow "block" (default) or "reject"
 *     retry: { maxAttempts: 3, baseMs: 100, capMs: 2000 },
 *   });
 *
 *   const handle = await queue.submit({
 *     type: "compute",
 *     payload: { operation: "factorial", value: 25 },
 *     idempotencyKey: "factorial-25",
 *   });
 *   assert.deepEqual(await handle.result, { result: "15511210043330985984000000" });
 *
 *   // The same key again: answered by the first task, not run twice.
 *   const again = await queue.submit({
 *     type: "compute",
 *     payload: { operation: "factorial", value: 25 },
 *     idempotencyKey: "factorial-25",
 *   });
 *   assert.equal(again.deduplicated, true);
 *   assert.equal(again.id, handle.id);
 *
 *   assert.equal(queue.metrics.snapshot().counters.succeeded, 1);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

/**
 * The version of this package.
 *
 * @example Reading the version
 * ```ts
 * import { VERSION } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.equal(typeof VERSION, "string");
 * ```
 */
export const VERSION: string = "0.1.0";

// -- errors --
export {
  deserializeError,
  type ErrorClass,
  errorClassOf,
  PermanentError,
  type SerializedError,
  serializeError,
  TaskCancelledError,
  TaskTimeoutError,
  TransientError,
  WorkerCrashedError,
} from "./lib/errors.ts";
export type {
  Handler,
  LogFields,
  TaskContext,
  TaskLogger,
} from "./lib/handler.ts";

// -- semaphore, channel --
export { Semaphore } from "./lib/semaphore.ts";
export {
  Channel,
  ChannelClosedError,
  type ChannelOptions,
  type ChannelSendOptions,
  ChannelSlot,
  type ChannelStats,
  type OverflowPolicy,
  QueueFullError,
} from "./lib/channel.ts";

// -- pool --
export {
  PoolClosedError,
  type PoolCloseOptions,
  type PoolEvent,
  type PoolFailure,
  type PoolListener,
  type PoolResult,
  type PoolSuccess,
  type PoolTask,
  type PoolWorkerStats,
  WorkerPool,
  type WorkerPoolOptions,
  type WorkerPoolStartOptions,
  type WorkerReplacedReason,
} from "./lib/pool/worker_pool.ts";

// -- store --
export {
  type PostgresDropOptions,
  PostgresTaskStore,
  type PostgresTaskStoreOptions,
} from "./lib/store/postgres/postgres_store.ts";
export {
  isPostgresUrl,
  openStore,
  type OpenStoreOptions,
} from "./lib/store/open_store.ts";
export {
  SqliteTaskStore,
  type SqliteTaskStoreOptions,
} from "./lib/store/sqlite/sqlite_store.ts";
export { MemoryTaskStore } from "./lib/store/memory_store.ts";
export type {
  CommitBatch,
  CommitResult,
  InsertOutcome,
  ListOptions,
  NewTask,
  Release,
  Renewal,
  Settlement,
  SettleOutcome,
  Start,
  StatusCounts,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./lib/store/store.ts";
export {
  openDatabase,
  type SqliteDriverInfo,
  sqliteDriverInfo,
} from "./lib/store/sqlite/open_database.ts";
export {
  SqliteError,
  type SqliteErrorOptions,
  type SqliteOperation,
} from "./lib/store/sqlite/sqlite_error.ts";
export type {
  Database,
  DriverName,
  OpenDatabaseOptions,
  Row,
  RunResult,
  SqlValue,
  Statement,
} from "./lib/store/sqlite/database.ts";

// -- metrics, log --
export {
  Histogram,
  type HistogramOptions,
  type HistogramSummary,
} from "./lib/metrics/histogram.ts";
export {
  type CounterName,
  COUNTERS,
  type CounterValues,
  type LatencySummary,
  Metrics,
  type MetricsOptions,
  type MetricsSnapshot,
  type WorkerStats,
  type WorkerUtilization,
} from "./lib/metrics/metrics.ts";
export {
  LOG_FIELDS,
  type LogFormat,
  Logger,
  type LoggerOptions,
  type LogLevel,
  parseLogLevel,
} from "./lib/log.ts";
export {
  type MetricsServer,
  type MetricsServerOptions,
  serveMetrics,
} from "./lib/metrics/server.ts";

// -- objects, handlers --
export {
  InvalidObjectKeyError,
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectRequestOptions,
  ObjectStore,
  type ObjectStoreOptions,
  type PutResult,
} from "./lib/objects.ts";
export {
  type DecodedPng,
  decodePng,
  type DecodePngOptions,
  encodePng,
  type EncodePngOptions,
  type PngColorType,
  type PngFilterType,
  type PngHeader,
} from "./lib/handlers/image/png.ts";
export {
  type ResizeFilter,
  type ResizeOptions,
  resizeRows,
  type Size,
} from "./lib/handlers/image/resize.ts";
export {
  type FaultConfig,
  type FaultPolicy,
  SIMULATED_IO_30MS,
  validateFaultPolicy,
  withFaults,
} from "./lib/faults.ts";
export {
  IMAGE_VARIANT_MAX_SOURCE_BYTES,
  imageVariant,
  type ImageVariantPayload,
  type ImageVariantResult,
} from "./lib/handlers/image/image_variant.ts";
export {
  compute,
  type ComputeOperation,
  type ComputePayload,
  type ComputeResult,
} from "./lib/handlers/compute.ts";
export {
  sleep,
  type SleepPayload,
  type SleepResult,
} from "./lib/handlers/sleep.ts";
export {
  createHttpSimulated,
  type HttpMethod,
  httpSimulated,
  type HttpSimulatedConfig,
  type HttpSimulatedHandler,
  type HttpSimulatedPayload,
  type HttpSimulatedResult,
} from "./lib/handlers/http_simulated.ts";
export { fail, type FailPayload } from "./lib/handlers/fail.ts";
export { noop } from "./lib/handlers/noop.ts";

// -- retry, queue --
export {
  defaultClassify,
  type JitterMode,
  type RetryDecision,
  type RetryOptions,
  RetryPolicy,
  type RetryVerdict,
} from "./lib/retry.ts";
export {
  type CloseOptions,
  type CloseReport,
  QueueClosedError,
  type SubmitManyOptions,
  type SubmitOptions,
  TaskFailedError,
  type TaskHandle,
  type TaskInput,
  type TaskQueueOptions,
  type TaskState,
} from "./lib/queue/types.ts";
export { type QueueChannelStats, TaskQueue } from "./lib/queue/task_queue.ts";
export type {
  AttemptEvent,
  FailureEvent,
  TaskEventBase,
  TaskEventListener,
  TaskEventMap,
  TaskEventName,
} from "./lib/queue/events.ts";

// -- cli, benchmark --
export {
  BENCHMARK_CSV_COLUMNS,
  type BenchmarkComparison,
  type BenchmarkConfig,
  type BenchmarkFiles,
  type BenchmarkMachine,
  type BenchmarkOptions,
  type BenchmarkProgress,
  type BenchmarkReport,
  type BenchmarkRun,
  benchmarkToCsv,
  benchmarkToSvg,
  formatBenchmarkTable,
  percentile,
  runBenchmark,
  writeBenchmarkReport,
} from "./lib/benchmark/benchmark.ts";
