/**
 * The durable task store: SQLite through either driver, in WAL mode, with
 * every batch of queue work applied in one `BEGIN IMMEDIATE` transaction.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import { keptCounts, QueueTallies } from "../_counts.ts";
import { serializeJson } from "../_json.ts";
import { newRecord } from "../_record.ts";
import type { ErrorClass } from "../../errors.ts";
import type { Database, Row, SqlValue } from "./database.ts";
import {
  applyPragmas,
  checkSchemaVersion,
  INSERT_ROWS,
  migrate,
  QUERIES,
  rowChunks,
  SCHEMA_VERSION,
  SETTLE_SUCCEEDED_ROWS,
  SYNCHRONOUS_MODES,
} from "./schema.ts";
import { openDatabase } from "./open_database.ts";
import { SCHEDULE_QUERIES, scheduleFromRow } from "./schedules.ts";
import { SqliteError } from "./sqlite_error.ts";
import type {
  CancelOutcome,
  CommitBatch,
  CommitResult,
  InsertAllOptions,
  InsertOutcome,
  ListOptions,
  NewSchedule,
  NewTask,
  PruneResult,
  QueueState,
  RemoveOutcome,
  RetentionPolicy,
  ScheduleFire,
  ScheduleFireOutcome,
  ScheduleRecord,
  Settlement,
  StateWrite,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "../store.ts";
import {
  CANCELLED_MESSAGE,
  type CheckedRule,
  checkPruneLimit,
  checkQueueName,
  checkRetention,
  DEFAULT_QUEUE,
  FirstOfPair,
  insertOnlyBatch,
  LEASE_EXPIRED_MESSAGE,
  rulesOf,
  SETTLED_STATUS,
  validateBatch,
  validateList,
} from "../_shared.ts";

/** Options for {@linkcode SqliteTaskStore.open}. */
export interface SqliteTaskStoreOptions {
  /**
   * SQLite driver: `"ffi"` (the system library), `"builtin"`
   * (`node:sqlite`), or `"auto"` (FFI first, then built-in).
   *
   * @default {"auto"}
   */
  driver?: "ffi" | "builtin" | "auto";
  /**
   * `PRAGMA synchronous`. `NORMAL` in WAL mode loses at most the last
   * commits on power loss, never consistency; `FULL` syncs every commit.
   *
   * @default {"NORMAL"}
   */
  synchronous?: "NORMAL" | "FULL" | "OFF";
  /**
   * How long a statement waits for another connection's lock, in ms.
   *
   * @default {5000}
   */
  busyTimeoutMs?: number;
  /**
   * Open for reading only (status readers in another process): no
   * migrations, no pragmas that write, and every write method throws.
   *
   * @default {false}
   */
  readonly?: boolean;
}

const DRIVERS = ["ffi", "builtin", "auto"] as const;

/** SQLITE_BUSY and SQLITE_LOCKED: another connection holds a lock. */
const BUSY_CODES: readonly number[] = [5, 6];
/** SQLITE_CANTOPEN. */
const CANTOPEN = 14;

/** Whether `error`, or an error it wraps, is SQLite reporting a lock. */
function isBusy(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof SqliteError && BUSY_CODES.includes(e.primaryCode)) {
      return true;
    }
  }
  return false;
}

/**
 * Blocks the thread for `ms`. `open` is synchronous, so its retries cannot
 * await a timer; each wait is a few milliseconds, within busyTimeoutMs.
 */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether `path` is known not to exist (only asked with read permission). */
function isMissing(path: string): boolean {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return false;
  }
  try {
    Deno.statSync(path);
    return false;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

/** The checked settings {@linkcode SqliteTaskStore.open} opens with. */
interface OpenSettings {
  driver: "ffi" | "builtin" | "auto";
  synchronous: "NORMAL" | "FULL" | "OFF";
  busyTimeoutMs: number;
  readonly: boolean;
}

/** The row's integer column as a number (timestamps fit: they are < 2^53). */
function int(value: SqlValue | undefined): number {
  return typeof value === "bigint" ? Number(value) : value as number;
}

function intOrNull(value: SqlValue | undefined): number | null {
  return value === null || value === undefined ? null : int(value);
}

function textOrNull(value: SqlValue | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

function jsonOrNull(value: SqlValue | undefined): unknown {
  return value === null || value === undefined
    ? null
    : JSON.parse(value as string);
}

function toRecord(row: Row): TaskRecord {
  const result = row["result"];
  return {
    id: row["id"] as string,
    type: row["type"] as string,
    queue: row["queue"] as string,
    priority: int(row["priority"]),
    idempotencyKey: textOrNull(row["idempotency_key"]),
    payload: JSON.parse(row["payload"] as string),
    status: row["status"] as TaskStatus,
    attempts: int(row["attempts"]),
    maxAttempts: int(row["max_attempts"]),
    runAt: int(row["run_at"]),
    leaseUntil: intOrNull(row["lease_until"]),
    startedAt: intOrNull(row["started_at"]),
    createdAt: int(row["created_at"]),
    updatedAt: int(row["updated_at"]),
    dedupeUntil: intOrNull(row["dedupe_until"]),
    outputKey: textOrNull(row["output_key"]),
    result: result === null || result === undefined
      ? null
      : JSON.parse(result as string),
    lastError: textOrNull(row["last_error"]),
    errorClass: textOrNull(row["error_class"]) as ErrorClass | null,
    progress: jsonOrNull(row["progress"]),
    checkpoint: jsonOrNull(row["checkpoint"]),
    version: int(row["version"]),
  };
}

/**
 * Adds one task's row values to `into`, in the order of `QUERIES.insert`
 * and of each row of `INSERT_ROWS`.
 */
function pushRow(
  into: SqlValue[],
  task: NewTask,
  payload: string,
  claim: boolean,
  queue: string,
  now: number,
  leaseUntil: number,
): void {
  into.push(
    task.id,
    task.type,
    task.idempotencyKey,
    payload,
    claim ? "running" : "queued",
    task.maxAttempts,
    task.runAt,
    claim ? leaseUntil : null,
    now,
    now,
    claim ? 1 : 0,
    task.dedupeUntil ?? null,
    queue,
    task.priority ?? 0,
  );
}

/** Inserts one task's row; 0 changes when its idempotency key is taken. */
function insertRow(
  db: Database,
  task: NewTask,
  payload: string,
  claim: boolean,
  queue: string,
  now: number,
  leaseUntil: number,
): number {
  const row: SqlValue[] = [];
  pushRow(row, task, payload, claim, queue, now, leaseUntil);
  return db.prepare(QUERIES.insert).run(...row).changes;
}

/**
 * The two forms of a write that ends a claim (a settle or a release), both
 * fenced by the claim's version: one also fenced by the queue the caller
 * gives (binds it last), one that reads the queue back.
 */
interface Fenced {
  inQueue: string;
  returning: string;
}

function fenced(sql: string): Fenced {
  return {
    inQueue: `${sql} AND queue = ?`,
    returning: `${sql} RETURNING queue`,
  };
}

const FENCED = {
  succeeded: fenced(QUERIES.settleSucceeded),
  retry: fenced(QUERIES.settleRetry),
  dead: fenced(QUERIES.settleDead),
  release: fenced(QUERIES.release),
};

/**
 * Runs a write that ends a claim and returns the queue of the row it
 * changed, or `null` when the fence refused it. With the caller's `queue`
 * the statement returns no row (a wrong queue refuses it, as a wrong
 * version does); without it the queue is read back with `RETURNING`.
 */
function fencedWrite(
  db: Database,
  sql: Fenced,
  queue: string | undefined,
  params: SqlValue[],
): string | null {
  if (queue !== undefined) {
    return db.prepare(sql.inQueue).run(...params, queue).changes > 0
      ? queue
      : null;
  }
  const row = db.prepare(sql.returning).get(...params);
  return row === undefined ? null : row["queue"] as string;
}

/** Claim order of candidate rows: priority, then run_at, then rowid. */
function byClaimOrder(a: Row, b: Row): number {
  return int(b["p"]) - int(a["p"]) || int(a["a"]) - int(b["a"]) ||
    int(a["r"]) - int(b["r"]);
}

/** Serializes progress values or checkpoints before the transaction. */
function stateTexts(
  writes: readonly StateWrite[] | undefined,
  what: "progress" | "checkpoint",
): { id: string; version: number; text: string | null }[] {
  return (writes ?? []).map(({ id, version, value }) => ({
    id,
    version,
    text: value === null
      ? null
      : serializeJson(value, `record ${what} of task`, id, what),
  }));
}

/** A finished row prune may delete: its rowid and `updated_at`. */
interface Prunable {
  r: number;
  u: number;
}

/**
 * The oldest rows of one finished status that `rule` lets go, oldest
 * first, at most `limit`: the first `min(excess, limit)` rows of the
 * status's index, then the rows after them finished before the cutoff.
 * Both are prefixes of the index order, so the result is their union. The
 * second read happens only when the first left room, so its `OFFSET` is
 * below `limit`.
 */
function oldestPrunable(
  db: Database,
  oldest: string,
  oldestBefore: string,
  queue: string,
  rule: CheckedRule,
  count: number,
  limit: number,
): Prunable[] {
  const excess = rule.keep === null ? 0 : Math.max(0, count - rule.keep);
  const take = Math.min(excess, limit);
  const rows = take > 0 ? db.prepare(oldest).all(queue, take) : [];
  if (rows.length < limit && rule.before !== null) {
    rows.push(
      ...db.prepare(oldestBefore).all(
        queue,
        rule.before,
        limit - rows.length,
        rows.length,
      ),
    );
  }
  return rows.map((row) => ({ r: int(row["r"]), u: int(row["u"]) }));
}

/**
 * A {@linkcode TaskStore} in a SQLite file. One writer connection per
 * process; readers in other processes open it with `readonly: true` and are
 * never blocked by the writer (WAL).
 *
 * Every method runs synchronously on the calling thread and returns a
 * settled promise, so two commits from one process never interleave.
 *
 * @experimental
 *
 * @example Inserting, claiming and settling a task
 * ```ts
 * import { SqliteTaskStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * await using store = SqliteTaskStore.open(":memory:");
 * const now = Date.now();
 * const first = await store.commit({
 *   settles: [],
 *   inserts: [{
 *     id: "t1",
 *     type: "compute",
 *     idempotencyKey: "job-1",
 *     payload: { n: 3 },
 *     maxAttempts: 3,
 *     runAt: now,
 *   }],
 *   claimDue: 10,
 *   leaseMs: 30_000,
 *   now,
 * });
 * assert.equal(first.inserted[0]?.inserted, true);
 * const claim = first.claimed[0]!;
 * assert.equal(claim.status, "running");
 * assert.equal(claim.attempts, 0); // charged when the handler starts
 * assert.equal(claim.startedAt, null); // set when its start is written
 *
 * // The handler ran to the end before its start was written: the settle
 * // charges the attempt itself.
 * const second = await store.commit({
 *   settles: [{
 *     id: claim.id,
 *     version: claim.version,
 *     outcome: { kind: "succeeded", result: 6, outputKey: null },
 *     charge: true,
 *   }],
 *   inserts: [],
 *   claimDue: 0,
 *   leaseMs: 30_000,
 *   now: now + 1,
 * });
 * assert.deepEqual(second.settled, [true]);
 * const done = await store.get("t1");
 * assert.equal(done?.result, 6);
 * assert.equal(done?.attempts, 1);
 * assert.equal(done?.startedAt, null); // no start was written
 * ```
 */
export class SqliteTaskStore implements TaskStore, AsyncDisposable {
  /** `"sqlite-ffi"` or `"sqlite-builtin"`, after the driver in use. */
  readonly kind: string;
  /** `false` only for `":memory:"`. */
  readonly durable: boolean;
  /** Whether the store was opened read-only. */
  readonly readonly: boolean;
  #db: Database;
  #path: string;
  #closed = false;
  /** The open write transaction's paused queues, once read; see `#paused`. */
  #pausedNow: ReadonlySet<string> | null = null;
  /** Settles once the open `insertAll` has ended; `undefined` when none. */
  #insertingAll: Promise<void> | undefined;
  /** Set by `close` during an `insertAll`: it rolls back at its next batch. */
  #stopInsertAll = false;

  private constructor(db: Database, path: string, readonly: boolean) {
    this.#db = db;
    this.#path = path;
    this.readonly = readonly;
    this.kind = `sqlite-${db.driver}`;
    this.durable = path !== ":memory:";
  }

  /**
   * Opens (creating if needed) the store at `path`, applies the pragmas
   * (WAL, `synchronous`, `busy_timeout`) and migrates the schema. A
   * read-only store never creates the file and checks the schema instead
   * of migrating it. When other processes hold the file's locks (several
   * opening one fresh file at once), the open waits and retries, for up
   * to `busyTimeoutMs`.
   *
   * @param path A file path, or `":memory:"`.
   * @param options Driver, durability and locking settings.
   * @returns The open store; close it with `close()` or `await using`.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws {SqliteError} When SQLite cannot open the file (missing
   *   directory, not a database, no permission), or it stays locked for
   *   longer than `busyTimeoutMs`.
   * @throws {Error} When the file's schema is newer than this code knows,
   *   or a read-only store finds no file or no Sluice queue in it (the
   *   `SqliteError`, if any, is the `cause`).
   *
   * @example Opening a file store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const dir = await Deno.makeTempDir();
   * const store = SqliteTaskStore.open(`${dir}/tasks.db`, { synchronous: "FULL" });
   * assert.equal(store.durable, true);
   * assert.match(store.kind, /^sqlite-(ffi|builtin)$/);
   * await store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   *
   * @example Opening a missing file read-only
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const dir = await Deno.makeTempDir();
   * assert.throws(
   *   () => SqliteTaskStore.open(`${dir}/none.db`, { readonly: true }),
   *   /there is no Sluice queue there \(the file does not exist\)/,
   * );
   * await assert.rejects(Deno.stat(`${dir}/none.db`), Deno.errors.NotFound);
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static open(
    path: string,
    options: SqliteTaskStoreOptions = {},
  ): SqliteTaskStore {
    if (typeof path !== "string" || path === "") {
      throw new TypeError(
        `Cannot open task store: path must be a non-empty string, got ${
          JSON.stringify(path)
        }`,
      );
    }
    const {
      driver = "auto",
      synchronous = "NORMAL",
      busyTimeoutMs = 5000,
      readonly = false,
    } = options;
    if (!(DRIVERS as readonly string[]).includes(driver)) {
      throw new RangeError(
        `Cannot open task store: driver must be "ffi", "builtin" or "auto", got ${
          JSON.stringify(driver)
        }`,
      );
    }
    if (typeof synchronous !== "string") {
      throw new TypeError(
        `Cannot open task store: synchronous must be a string, got ${typeof synchronous}`,
      );
    }
    if (!(SYNCHRONOUS_MODES as readonly string[]).includes(synchronous)) {
      throw new RangeError(
        `Cannot open task store: synchronous must be "NORMAL", "FULL" or "OFF", got ${
          JSON.stringify(synchronous)
        }`,
      );
    }
    if (typeof busyTimeoutMs !== "number") {
      throw new TypeError(
        `Cannot open task store: busyTimeoutMs must be a number, got ${typeof busyTimeoutMs}`,
      );
    }
    if (
      !Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0 ||
      busyTimeoutMs > 2 ** 31 - 1
    ) {
      throw new RangeError(
        `Cannot open task store: busyTimeoutMs must be an integer from 0 to 2147483647, got ${busyTimeoutMs}`,
      );
    }
    if (typeof readonly !== "boolean") {
      throw new TypeError(
        `Cannot open task store: readonly must be a boolean, got ${typeof readonly}`,
      );
    }
    const settings: OpenSettings = {
      driver,
      synchronous,
      busyTimeoutMs,
      readonly,
    };
    // Processes opening one fresh file at once contend for it: the header
    // read, the WAL switch and the migrations can report SQLITE_BUSY
    // without waiting in the busy handler. The whole open is retried with
    // jittered backoff until busyTimeoutMs has passed.
    const deadline = performance.now() + busyTimeoutMs;
    for (let attempt = 0;; attempt++) {
      try {
        return SqliteTaskStore.#openOnce(path, settings);
      } catch (error) {
        const remaining = deadline - performance.now();
        if (!isBusy(error) || remaining <= 0) throw error;
        const backoff = Math.min(2 ** attempt, 50) * (0.5 + Math.random());
        sleepSync(Math.min(remaining, backoff));
      }
    }
  }

  static #openOnce(path: string, settings: OpenSettings): SqliteTaskStore {
    const { driver, synchronous, busyTimeoutMs, readonly } = settings;
    let db: Database;
    try {
      db = openDatabase(path, { driver, readonly });
    } catch (error) {
      // A read-only open never creates the file, so a missing one fails
      // here with SQLite's bare "unable to open database file".
      if (
        readonly && error instanceof SqliteError &&
        error.primaryCode === CANTOPEN
      ) {
        const reason = isMissing(path)
          ? "the file does not exist"
          : error.message;
        throw new Error(
          `Cannot open task store ${path} read-only: there is no Sluice queue there (${reason})`,
          { cause: error },
        );
      }
      throw error;
    }
    try {
      applyPragmas(db, { synchronous, busyTimeoutMs, wal: false });
      if (readonly) {
        const found = checkSchemaVersion(db, path);
        if (found === 0) {
          throw new Error(
            `Cannot open task store ${path} read-only: the file holds no Sluice queue (schema version 0)`,
          );
        }
        if (found < SCHEMA_VERSION) {
          throw new Error(
            `Cannot open task store ${path} read-only: schema version ${found} is older than ${SCHEMA_VERSION} and cannot be migrated read-only`,
          );
        }
      } else {
        // Read the header first so a foreign or newer file is refused
        // before anything (the WAL switch included) writes to it.
        checkSchemaVersion(db, path);
        applyPragmas(db, { synchronous, busyTimeoutMs, wal: true });
        migrate(db, path);
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteTaskStore(db, path, readonly);
  }

  /**
   * Serializes a payload as the store will keep it. The queue calls this at
   * submit time, so a payload that cannot be stored is refused before it
   * joins a batch.
   *
   * @param payload The task's payload.
   * @param id The task's id, for the message.
   * @returns The JSON text.
   * @throws {TypeError} When the payload is not plain JSON data, so JSON
   *   would change it (`NaN`, BigInt, a `Map`, `Date` or other class
   *   instance, a function, an array hole, a cycle, a top-level
   *   `undefined`…); the message names the path.
   *
   * @example Refusing what JSON would change
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * assert.equal(SqliteTaskStore.serializePayload({ a: 1 }), '{"a":1}');
   * assert.throws(() => SqliteTaskStore.serializePayload({ n: 1n }), TypeError);
   * assert.throws(
   *   () => SqliteTaskStore.serializePayload({ items: [1, new Date(0)] }),
   *   /payload is not plain JSON data \(Date at payload\.items\[1\]\)/,
   * );
   * ```
   */
  static serializePayload(payload: unknown, id?: string): string {
    return serializeJson(payload, "store task", id, "payload")!;
  }

  /**
   * Serializes a handler's result as the store will keep it. Unlike a
   * payload, `undefined` (a handler that returns nothing) is accepted and
   * stored as SQL `NULL`, read back as `null`.
   *
   * @param result The handler's result.
   * @param id The task's id, for the message.
   * @returns The JSON text, or `null` for `undefined`.
   * @throws {TypeError} When the result is not plain JSON data (see
   *   {@linkcode SqliteTaskStore.serializePayload}).
   *
   * @example Checking results before settling
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * assert.equal(SqliteTaskStore.serializeResult(undefined), null);
   * assert.equal(SqliteTaskStore.serializeResult([1]), "[1]");
   * assert.throws(() => SqliteTaskStore.serializeResult(1n), TypeError);
   * ```
   */
  static serializeResult(result: unknown, id?: string): string | null {
    return serializeJson(result, "settle task", id, "result", true);
  }

  /**
   * Throws when `value` cannot be stored as a payload or result.
   *
   * @param value The payload or result.
   * @param what Which of the two it is.
   * @throws {TypeError} When it is not plain JSON data: "Cannot store
   *   task: <what> is not plain JSON data (<problem> at <path>)".
   *
   * @example Refusing a Map nested in a result
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * store.checkValue({ items: [1, 2] }, "result");
   * assert.throws(() => store.checkValue({ items: new Map() }, "result"), {
   *   name: "TypeError",
   *   message: "Cannot store task: result is not plain JSON data (Map at result.items)",
   * });
   * ```
   */
  checkValue(value: unknown, what: "payload" | "result"): void {
    serializeJson(value, "store task", undefined, what, what === "result");
  }

  /** @throws {Error} When closed, or when a write is attempted read-only. */
  #check(action: string, write: boolean): Database {
    if (this.#closed) {
      throw new Error(`Cannot ${action}: task store is closed`);
    }
    if (write && this.readonly) {
      throw new Error(`Cannot ${action}: task store is read-only`);
    }
    return this.#db;
  }

  /**
   * Runs `body` inside `BEGIN IMMEDIATE` … `COMMIT`, rolling back on error.
   * `body` records every change of status it makes in the tally it is
   * given, which is added to the kept counts with one statement before
   * the commit: the counts change in the transaction that changes the
   * rows, or not at all.
   */
  #transaction<T>(db: Database, body: (tally: QueueTallies) => T): T {
    this.#begin(db);
    try {
      const tally = new QueueTallies();
      const result = body(tally);
      this.#finish(db, tally);
      return result;
    } catch (error) {
      this.#rollback(db);
      throw error;
    }
  }

  /** Adds `tally` to the kept counts and commits the open transaction. */
  #finish(db: Database, tally: QueueTallies): void {
    for (const [queue, { counts, totals, moved }] of tally.entries()) {
      if (!moved) continue;
      db.prepare(QUERIES.addCounts).run(
        queue,
        counts.queued,
        counts.running,
        counts.succeeded,
        counts.failed,
        counts.dead,
        totals.succeeded,
        totals.dead,
        totals.submitted,
      );
    }
    // A failed COMMIT (I/O error, disk full) leaves the transaction open
    // on this connection, so the caller rolls it back like any failure.
    db.prepare(QUERIES.commit).run();
  }

  #rollback(db: Database): void {
    try {
      db.prepare(QUERIES.rollback).run();
    } catch {
      // SQLite may already have rolled back (e.g. after SQLITE_FULL).
    }
  }

  /**
   * While an {@linkcode SqliteTaskStore.insertAll} holds the connection's
   * transaction open across awaits, any other call would run inside it:
   * `call` is run once it has ended instead. `undefined` when none is open.
   */
  #afterInsertAll<T>(call: () => Promise<T>): Promise<T> | undefined {
    return this.#insertingAll?.then(call);
  }

  /**
   * Inserts every task of `batches` in one `BEGIN IMMEDIATE` transaction,
   * reading one batch at a time: all of them, or none when the source
   * throws, a task cannot be stored or the store closes meanwhile. The
   * write lock is held from the first batch to the commit, so claimers in
   * other processes wait (up to `busy_timeout`) and see none of the tasks
   * until the end; calls on this store wait until it ends.
   *
   * @param batches The tasks, a batch at a time.
   * @param options The time the inserts are applied at, and where each
   *   batch's outcomes go.
   * @returns Once committed.
   * @throws {TypeError} When a payload is not plain JSON data; nothing is
   *   inserted.
   * @throws {RangeError} When a task asks to be inserted claimed.
   * @throws {SqliteError} When SQLite fails; nothing is inserted.
   * @throws {Error} When the store is closed, read-only, or closes before
   *   the end.
   *
   * @example Inserting two batches at once
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 };
   * async function* batches() {
   *   yield [{ ...task, id: "a" }];
   *   yield [{ ...task, id: "b" }];
   * }
   * const ids: string[] = [];
   * await store.insertAll(batches(), {
   *   now: 0,
   *   onInserted: (outcomes) => ids.push(...outcomes.map((o) => o.record.id)),
   * });
   * assert.deepEqual(ids, ["a", "b"]);
   * assert.equal((await store.status(0)).counts.queued, 2);
   * ```
   */
  insertAll(
    batches: AsyncIterable<readonly NewTask[]>,
    options: InsertAllOptions,
  ): Promise<void> {
    const waiting = this.#afterInsertAll(() =>
      this.insertAll(batches, options)
    );
    if (waiting !== undefined) return waiting;
    const done = this.#insertAll(batches, options);
    const ended = done.then(() => {}, () => {});
    this.#insertingAll = ended;
    void ended.then(() => {
      if (this.#insertingAll === ended) this.#insertingAll = undefined;
    });
    return done;
  }

  async #insertAll(
    batches: AsyncIterable<readonly NewTask[]>,
    { now, onInserted }: InsertAllOptions,
  ): Promise<void> {
    const db = this.#check("insert tasks", true);
    if (!Number.isFinite(now)) {
      throw new RangeError(
        `Cannot insert tasks: now must be a finite number, got ${now}`,
      );
    }
    const tally = new QueueTallies();
    const ownExpired = new Set<string>();
    let open = false;
    try {
      for await (const tasks of batches) {
        if (this.#stopInsertAll) {
          throw new Error("Cannot insert tasks: task store is closing");
        }
        const batch = insertOnlyBatch(tasks, now);
        const payloads = batch.inserts.map((task) =>
          serializeJson(task.payload, "store task", task.id, "payload")!
        );
        if (!open) {
          this.#begin(db);
          open = true;
        }
        onInserted(
          this.#insert(
            db,
            batch.inserts,
            payloads,
            now,
            now,
            tally,
            ownExpired,
          ),
        );
      }
      if (!open) return;
      this.#finish(db, tally);
    } catch (error) {
      if (open) this.#rollback(db);
      throw error;
    }
  }

  /**
   * Applies one batch in one transaction, in order: renewals, starts,
   * progress, checkpoints,
   * settles, releases, recovery of expired leases (when `recover` is set),
   * inserts, claims of due tasks. Either all of it is applied or none.
   * Each start, settle, release and renewal is one cached statement.
   *
   * @param batch The work to apply.
   * @returns What was renewed, started, settled, released, recovered,
   *   inserted and claimed.
   * @throws {TypeError} When a payload or result is not plain JSON data, or
   *   an id, type or key holds U+0000 or a lone surrogate; nothing is
   *   applied.
   * @throws {RangeError} When a batch field is out of range.
   * @throws {SqliteError} When SQLite fails; the transaction is rolled back.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Claiming due work
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const { claimed } = await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *   claimDue: 5,
   *   leaseMs: 1000,
   *   now: 10,
   * });
   * assert.deepEqual(claimed.map((task) => [task.id, task.attempts, task.leaseUntil]), [["a", 0, 1010]]);
   * ```
   *
   * @example Renewing, starting and recovering in one batch
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 3, runAt: 0, claim: true };
   * const { inserted } = await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "kept" }, { ...task, id: "lost" }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const kept = inserted[0]!.record;
   * // Past both leases: the renewal keeps "kept", recovery takes "lost".
   * const result = await store.commit({
   *   renewals: [{ id: kept.id, version: kept.version }],
   *   starts: [{ id: kept.id, version: kept.version }],
   *   settles: [],
   *   recover: true,
   *   inserts: [],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 500,
   * });
   * assert.deepEqual([result.renewed, result.started, result.recovered], [[true], [true], 1]);
   * const renewed = await store.get("kept");
   * assert.deepEqual([renewed?.leaseUntil, renewed?.startedAt], [600, 500]);
   * assert.equal((await store.get("lost"))?.status, "queued");
   * ```
   */
  commit(batch: CommitBatch): Promise<CommitResult> {
    const waiting = this.#afterInsertAll(() => this.commit(batch));
    if (waiting !== undefined) return waiting;
    try {
      return Promise.resolve(this.#commit(batch));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #commit(batch: CommitBatch): CommitResult {
    const db = this.#check("commit", true);
    validateBatch(batch);
    const { now } = batch;
    const leaseUntil = now + batch.leaseMs;
    // Serialize before BEGIN: a bad value refuses the batch without
    // touching the database.
    const payloads = batch.inserts.map((task) =>
      serializeJson(task.payload, "store task", task.id, "payload")!
    );
    const results = batch.settles.map((settle) =>
      settle.outcome.kind === "succeeded"
        ? serializeJson(
          settle.outcome.result,
          "settle task",
          settle.id,
          "result",
          true,
        )
        : null
    );
    const progress = stateTexts(batch.progress, "progress");
    const checkpoints = stateTexts(batch.checkpoints, "checkpoint");
    return this.#transaction(db, (tally) => {
      const renewed: boolean[] = [];
      for (const { id, version } of batch.renewals ?? []) {
        renewed.push(
          db.prepare(QUERIES.renew).run(leaseUntil, id, version).changes > 0,
        );
      }

      const started: boolean[] = [];
      for (const { id, version } of batch.starts ?? []) {
        started.push(
          db.prepare(QUERIES.start).run(now, id, version).changes > 0,
        );
      }

      const progressed = progress.map(({ id, version, text }) =>
        db.prepare(QUERIES.progress).run(text, id, version).changes > 0
      );
      const checkpointed = checkpoints.map(({ id, version, text }) =>
        db.prepare(QUERIES.checkpoint).run(text, id, version).changes > 0
      );

      const settled = this.#settle(db, batch.settles, results, now, tally);

      const released: boolean[] = [];
      const releasing = new FirstOfPair();
      for (const { id, version, refund, queue: of } of batch.releases ?? []) {
        if (releasing.take(id, version) === "copy") {
          released.push(false);
          continue;
        }
        const queue = fencedWrite(db, FENCED.release, of, [
          refund === true ? 1 : 0,
          now,
          id,
          version,
        ]);
        released.push(queue !== null);
        if (queue !== null) tally.move(queue, "running", "queued");
      }

      const recovered = batch.recover === true
        ? this.#recover(db, now, tally)
        : 0;

      const inserted = this.#insert(
        db,
        batch.inserts,
        payloads,
        now,
        leaseUntil,
        tally,
        new Set(),
      );

      const claimed = batch.claimDue > 0
        ? this.#claimDue(db, batch, now, leaseUntil, tally)
        : [];
      return {
        renewed,
        started,
        progressed,
        checkpointed,
        settled,
        released,
        recovered,
        inserted,
        claimed,
      };
    });
  }

  /**
   * Settles claims inside the caller's transaction and returns which
   * applied. Of the settles of one claim, only the first can apply (see
   * `FirstOfPair`). The successes, each the first settle of its task in
   * the batch, go by multi-row statements; the rest (other outcomes, a
   * task's settles under another version) one by one after them, in batch
   * order. Refused settles are counted as stale.
   */
  #settle(
    db: Database,
    settles: readonly Settlement[],
    results: readonly (string | null)[],
    now: number,
    tally: QueueTallies,
  ): boolean[] {
    const settled = new Array<boolean>(settles.length).fill(false);
    const together: number[] = [];
    const alone: number[] = [];
    const pairs = new FirstOfPair();
    let stale = 0;
    for (let i = 0; i < settles.length; i++) {
      const { id, version, outcome } = settles[i]!;
      const taken = pairs.take(id, version);
      if (taken === "copy") stale++;
      else if (taken === "first" && outcome.kind === "succeeded") {
        together.push(i);
      } else {
        alone.push(i);
      }
    }
    let at = 0;
    for (const rows of rowChunks(together.length)) {
      const params: SqlValue[] = [now];
      for (let j = at; j < at + rows; j++) {
        const i = together[j]!;
        const { id, version, outcome, charge, startedAt, queue } = settles[i]!;
        params.push(
          id,
          version,
          queue ?? null,
          results[i] ?? null,
          outcome.kind === "succeeded" ? outcome.outputKey : null,
          charge === true ? 1 : 0,
          startedAt ?? null,
        );
      }
      // The queue of each settle that applied, by task id.
      const applied = new Map<string, string>();
      for (
        const row of db.prepare(SETTLE_SUCCEEDED_ROWS.of(rows)).all(...params)
      ) {
        applied.set(row["id"] as string, row["queue"] as string);
      }
      for (let j = at; j < at + rows; j++) {
        const i = together[j]!;
        const queue = applied.get(settles[i]!.id);
        if (queue !== undefined) {
          settled[i] = true;
          tally.move(queue, "running", "succeeded");
        } else {
          stale++;
        }
      }
      at += rows;
    }
    for (const i of alone) {
      const { id, version, outcome, charge, startedAt, queue: of } =
        settles[i]!;
      const charged = charge === true ? 1 : 0;
      const start = startedAt ?? null;
      // Each outcome's own columns, then those every settle binds.
      const fields: SqlValue[] = outcome.kind === "succeeded"
        ? [results[i] ?? null, outcome.outputKey]
        : outcome.kind === "retry"
        ? [outcome.runAt, outcome.error, outcome.errorClass]
        : [outcome.error, outcome.errorClass];
      fields.push(charged, start, now, id, version);
      const queue = fencedWrite(db, FENCED[outcome.kind], of, fields);
      settled[i] = queue !== null;
      if (queue === null) stale++;
      else tally.move(queue, "running", SETTLED_STATUS[outcome.kind]);
    }
    if (stale > 0) db.prepare(QUERIES.countStale).run(stale);
    return settled;
  }

  /**
   * Claims due tasks inside the caller's transaction: each queue's
   * candidates in claim order (at most its limit), merged, the first
   * `claimDue` taken by rowid.
   */
  #claimDue(
    db: Database,
    batch: CommitBatch,
    now: number,
    leaseUntil: number,
    tally: QueueTallies,
  ): TaskRecord[] {
    const paused = this.#paused(db);
    const types = batch.claimTypes === undefined
      ? null
      : JSON.stringify(batch.claimTypes);
    const candidates: Row[] = [];
    for (
      const { queue, limit } of batch.claimQueues ?? [{ queue: DEFAULT_QUEUE }]
    ) {
      if (paused.has(queue)) continue;
      const n = Math.min(batch.claimDue, limit ?? Infinity);
      if (n <= 0) continue;
      const rows = types === null
        ? db.prepare(QUERIES.claimCandidates).all(queue, now, n)
        : db.prepare(QUERIES.claimCandidatesOfTypes).all(queue, now, types, n);
      for (const row of rows) {
        row["q"] = queue;
        candidates.push(row);
      }
    }
    if (candidates.length === 0) return [];
    candidates.sort(byClaimOrder);
    const taken = candidates.slice(0, batch.claimDue);
    const rows = db.prepare(QUERIES.claimRows).all(
      leaseUntil,
      now,
      JSON.stringify(taken.map((row) => int(row["r"]))),
    );
    // RETURNING yields rows in update order, not claim order.
    const order = new Map(taken.map((row, i) => [int(row["r"]), i]));
    for (const row of rows) {
      const was = taken[order.get(int(row["seq"]))!]!;
      tally.move(was["q"] as string, was["s"] as TaskStatus, "running");
    }
    rows.sort((a, b) => order.get(int(a["seq"]))! - order.get(int(b["seq"]))!);
    return rows.map(toRecord);
  }

  /** Starts a write transaction; its paused queues are read afresh. */
  #begin(db: Database): void {
    db.prepare(QUERIES.begin).run();
    this.#pausedNow = null;
  }

  /**
   * The paused queues' names, read once per transaction (by its first
   * claim or claimed insert), inside it.
   */
  #paused(db: Database): ReadonlySet<string> {
    if (this.#pausedNow !== null) return this.#pausedNow;
    const names = new Set<string>();
    for (const row of db.prepare(QUERIES.pausedQueues).all()) {
      names.add(row["name"] as string);
    }
    this.#pausedNow = names;
    return names;
  }

  /**
   * Inserts `tasks` inside the caller's transaction, recording each in
   * `tally`. `ownExpired` holds the keys this transaction inserted with a
   * window already past: the only rows of the transaction a later insert
   * could otherwise take a key from; it is shared by every batch of one
   * transaction.
   */
  #insert(
    db: Database,
    tasks: readonly NewTask[],
    payloads: readonly string[],
    now: number,
    leaseUntil: number,
    tally: QueueTallies,
    ownExpired: Set<string>,
  ): InsertOutcome[] {
    const inserted: InsertOutcome[] = [];
    const paused = tasks.some((task) => task.claim === true)
      ? this.#paused(db)
      : null;
    for (let i = 0; i < tasks.length; i++) {
      if (tasks[i]!.idempotencyKey === null) {
        // A run of tasks without a key: nothing to look up, several rows
        // per statement.
        let end = i + 1;
        while (end < tasks.length && tasks[end]!.idempotencyKey === null) end++;
        let start = i;
        for (const rows of rowChunks(end - i)) {
          const params: SqlValue[] = [];
          for (let j = start; j < start + rows; j++) {
            const task = tasks[j]!;
            const queue = task.queue ?? DEFAULT_QUEUE;
            const claim = task.claim === true && !paused!.has(queue);
            pushRow(params, task, payloads[j]!, claim, queue, now, leaseUntil);
            tally.move(queue, null, claim ? "running" : "queued");
            inserted.push({
              inserted: true,
              record: newRecord(task, now, leaseUntil, claim),
            });
          }
          db.prepare(INSERT_ROWS.of(rows)).run(...params);
          start += rows;
        }
        i = end - 1;
        continue;
      }
      const task = tasks[i]!;
      const queue = task.queue ?? DEFAULT_QUEUE;
      const claim = task.claim === true && !paused!.has(queue);
      const until = task.dedupeUntil ?? null;
      const payload = payloads[i]!;
      if (
        insertRow(db, task, payload, claim, queue, now, leaseUntil) === 0
      ) {
        // Only the idempotency key can conflict without throwing, so the
        // existing row (possibly inserted earlier in this batch) exists.
        const key = task.idempotencyKey!;
        const row = db.prepare(QUERIES.byKey).get(key)!;
        const held = row["dedupe_until"];
        if (
          held === null || held === undefined || int(held) >= now ||
          ownExpired.has(key)
        ) {
          inserted.push({ inserted: false, record: toRecord(row) });
          continue;
        }
        // The holder's window has passed: it gives the key up.
        db.prepare(QUERIES.releaseKey).run(row["id"] as string);
        insertRow(db, task, payload, claim, queue, now, leaseUntil);
      }
      if (until !== null && until < now && task.idempotencyKey !== null) {
        ownExpired.add(task.idempotencyKey);
      }
      tally.move(queue, null, claim ? "running" : "queued");
      inserted.push({
        inserted: true,
        record: newRecord(task, now, leaseUntil, claim),
      });
    }
    return inserted;
  }

  /** Recovers expired leases inside the caller's transaction. */
  #recover(db: Database, now: number, tally: QueueTallies): number {
    const dead = db.prepare(QUERIES.expireToDead).all(
      LEASE_EXPIRED_MESSAGE,
      now,
      now,
    );
    for (const row of dead) {
      tally.move(row["queue"] as string, "running", "dead");
    }
    const queued = db.prepare(QUERIES.expireToQueued).all(now, now);
    for (const row of queued) {
      tally.move(row["queue"] as string, "running", "queued");
    }
    return dead.length + queued.length;
  }

  /**
   * Returns running tasks whose lease ended before `now` to `queued`, or to
   * `dead` when their charged attempts have reached `maxAttempts` (a claim
   * that never started charged nothing). Each gets a new version, so a
   * late settle from the old claim is refused.
   *
   * @param now The current time (epoch ms).
   * @returns How many tasks were recovered (requeued or dead-lettered).
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Recovering after a crash
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: null, maxAttempts: 3, runAt: 0 }],
   *   claimDue: 1,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * assert.equal(await store.recoverExpired(500), 1);
   * assert.equal((await store.get("a"))?.status, "queued");
   * ```
   */
  recoverExpired(now: number): Promise<number> {
    const waiting = this.#afterInsertAll(() => this.recoverExpired(now));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("recover expired leases", true);
      return Promise.resolve(
        this.#transaction(db, (tally) => this.#recover(db, now, tally)),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads one task by id.
   *
   * @param id The task id.
   * @returns The task, or `undefined`.
   * @throws {Error} When the store is closed.
   *
   * @example Missing task
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.get("nope"), undefined);
   * ```
   */
  get(id: string): Promise<TaskRecord | undefined> {
    const waiting = this.#afterInsertAll(() => this.get(id));
    if (waiting !== undefined) return waiting;
    try {
      const row = this.#check("get task", false).prepare(QUERIES.byId).get(id);
      return Promise.resolve(row === undefined ? undefined : toRecord(row));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads one task by idempotency key.
   *
   * @param key The idempotency key.
   * @returns The task, or `undefined`.
   * @throws {Error} When the store is closed.
   *
   * @example Missing key
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.getByKey("nope"), undefined);
   * ```
   */
  getByKey(key: string): Promise<TaskRecord | undefined> {
    const waiting = this.#afterInsertAll(() => this.getByKey(key));
    if (waiting !== undefined) return waiting;
    try {
      const row = this.#check("get task", false).prepare(QUERIES.byKey).get(
        key,
      );
      return Promise.resolve(row === undefined ? undefined : toRecord(row));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Lists tasks, oldest `createdAt` first (insertion order within one
   * commit).
   *
   * @param options Status filter, limit and offset.
   * @returns The tasks.
   * @throws {RangeError} When `limit` or `offset` is not a non-negative integer.
   * @throws {Error} When the store is closed.
   *
   * @example Listing queued tasks
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.deepEqual(await store.list({ status: "queued", limit: 10 }), []);
   * ```
   */
  list(options: ListOptions = {}): Promise<TaskRecord[]> {
    const waiting = this.#afterInsertAll(() => this.list(options));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("list tasks", false);
      const { status, queue, limit, offset } = validateList(options);
      const rows = queue !== undefined
        ? db.prepare(QUERIES.listByQueue).all(
          queue,
          status ?? null,
          status ?? null,
          limit ?? -1,
          offset,
        )
        : status === undefined
        ? db.prepare(QUERIES.listAll).all(limit ?? -1, offset)
        : status === "dead"
        ? db.prepare(QUERIES.listDead).all(limit ?? -1, offset)
        : status === "running"
        ? db.prepare(QUERIES.listRunning).all(limit ?? -1, offset)
        : db.prepare(QUERIES.listByStatus).all(status, limit ?? -1, offset);
      return Promise.resolve(rows.map(toRecord));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Moves dead tasks back to `queued`, due at `now`, with attempts reset to 0.
   * Ids that are unknown or not dead are skipped.
   *
   * @param ids The ids, or `"all"` for every dead task.
   * @param now The current time (epoch ms).
   * @returns How many tasks were requeued.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Requeueing nothing
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.requeue("all", Date.now()), 0);
   * ```
   */
  requeue(ids: string[] | "all", now: number): Promise<number> {
    const waiting = this.#afterInsertAll(() => this.requeue(ids, now));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("requeue tasks", true);
      return Promise.resolve(this.#transaction(db, (tally) => {
        let count = 0;
        if (ids === "all") {
          for (const row of db.prepare(QUERIES.deadByQueue).all()) {
            tally.move(row["queue"] as string, "dead", "queued", int(row["n"]));
          }
          count = db.prepare(QUERIES.requeueAll).run(now, now).changes;
        } else {
          for (const id of ids) {
            const row = db.prepare(QUERIES.requeueId).get(now, now, id);
            if (row === undefined) continue;
            tally.move(row["queue"] as string, "dead", "queued");
            count++;
          }
        }
        return count;
      }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Cancels tasks in one transaction: a queued, failed or running task
   * becomes `dead` with the error "Cannot run task: cancelled" and a new
   * version, so a running attempt's renewals and settle are refused.
   *
   * @param ids The task ids.
   * @param now The current time (epoch ms).
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Cancelling an unknown task
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const [outcome] = await store.cancel(["x"], Date.now());
   * assert.equal(outcome?.outcome, "missing");
   * ```
   */
  cancel(ids: readonly string[], now: number): Promise<CancelOutcome[]> {
    const waiting = this.#afterInsertAll(() => this.cancel(ids, now));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("cancel tasks", true);
      return Promise.resolve(
        this.#transaction(db, (tally) =>
          ids.map((id): CancelOutcome => {
            const row = db.prepare(QUERIES.statusOf).get(id);
            if (row === undefined) return { id, outcome: "missing", was: null };
            const was = row["status"] as TaskStatus;
            if (was === "succeeded" || was === "dead") {
              return { id, outcome: "finished", was };
            }
            db.prepare(QUERIES.cancel).run(CANCELLED_MESSAGE, now, id);
            tally.move(row["queue"] as string, was, "dead");
            return { id, outcome: "cancelled", was };
          })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deletes tasks that are not running, in one transaction; their
   * idempotency keys are free.
   *
   * @param ids The task ids.
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Removing an unknown task
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.deepEqual(await store.remove(["x"]), [{ id: "x", outcome: "missing" }]);
   * ```
   */
  remove(ids: readonly string[]): Promise<RemoveOutcome[]> {
    const waiting = this.#afterInsertAll(() => this.remove(ids));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("remove tasks", true);
      return Promise.resolve(
        this.#transaction(db, (tally) =>
          ids.map((id): RemoveOutcome => {
            const row = db.prepare(QUERIES.statusOf).get(id);
            if (row === undefined) return { id, outcome: "missing" };
            const was = row["status"] as TaskStatus;
            if (was === "running") return { id, outcome: "running" };
            db.prepare(QUERIES.removeId).run(id);
            tally.move(row["queue"] as string, was, null);
            return { id, outcome: "removed" };
          })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Pauses or resumes a queue: claims in every process skip a paused
   * queue's tasks from their next commit on.
   *
   * @param queue The queue name.
   * @param paused `true` to pause, `false` to resume.
   * @param now The current time (epoch ms).
   * @returns A promise that settles once stored.
   * @throws {RangeError} When the name is empty or too long.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Pausing a queue
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * await store.setPaused("emails", true, 5);
   * assert.deepEqual(await store.queueStates(), [{ name: "emails", paused: true, updatedAt: 5 }]);
   * ```
   */
  setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    const waiting = this.#afterInsertAll(() =>
      this.setPaused(queue, paused, now)
    );
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check(paused ? "pause queue" : "resume queue", true);
      checkQueueName(queue, "queue");
      this.#transaction(db, () => {
        db.prepare(QUERIES.setPaused).run(queue, paused ? 1 : 0, now);
      });
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The queues paused or resumed at least once, by name.
   *
   * @returns Their states.
   * @throws {Error} When the store is closed.
   *
   * @example No queue state yet
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.deepEqual(await store.queueStates(), []);
   * ```
   */
  queueStates(): Promise<QueueState[]> {
    const waiting = this.#afterInsertAll(() => this.queueStates());
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("read queue states", false);
      return Promise.resolve(
        db.prepare(QUERIES.queueStates).all().map((row) => ({
          name: row["name"] as string,
          paused: int(row["paused"]) === 1,
          updatedAt: int(row["updated_at"]),
        })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads counts by status and the totals of tasks ever inserted,
   * succeeded and dead-lettered (six rows every writing transaction of
   * this store adds its changes to), the age of the oldest due claimable
   * task (queued, or failed and due: the due index's first entry), the
   * failed tasks due (the due index's due entries), and how many running
   * tasks have a recorded start (through the index on running rows), in
   * one read transaction. No read grows with the finished rows. Works on a
   * read-only store while a writer is active.
   *
   * @param now The current time (epoch ms).
   * @returns The snapshot.
   * @throws {Error} When the store is closed.
   *
   * @example An empty store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const status = await store.status(Date.now());
   * assert.equal(status.counts.queued, 0);
   * assert.equal(status.started, 0);
   * assert.equal(status.oldestQueuedAgeMs, null);
   * assert.equal(status.dueFailed, 0);
   * assert.deepEqual(status.totals, { submitted: 0, succeeded: 0, dead: 0 });
   * ```
   *
   * @example Telling started tasks from claimed ones
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 3, runAt: 0 };
   * const { claimed } = await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *   claimDue: 2,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const { id, version } = claimed[0]!;
   * await store.commit({ starts: [{ id, version }], settles: [], inserts: [], claimDue: 0, leaseMs: 100, now: 7 });
   * const { counts, started } = await store.status(8);
   * assert.deepEqual([counts.running, started], [2, 1]);
   * assert.equal((await store.get("a"))?.startedAt, 7);
   * assert.equal((await store.get("b"))?.startedAt, null);
   * ```
   */
  status(now: number): Promise<StoreStatus> {
    const waiting = this.#afterInsertAll(() => this.status(now));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("read status", false);
      // One read transaction so the four reads see one snapshot.
      db.exec("BEGIN");
      try {
        const { counts, totals, queues } = keptCounts(
          db.prepare(QUERIES.statusCounts).all().map((row) => [
            row["queue"] as string,
            row["status"] as string,
            int(row["n"]),
            int(row["entered"]),
          ]),
        );
        const oldest = db.prepare(QUERIES.oldestDue).get(now)?.["oldest"];
        const dueFailed = db.prepare(QUERIES.dueFailed).get(now)?.["n"];
        const started = db.prepare(QUERIES.startedRunning).get()?.["n"];
        return Promise.resolve({
          counts,
          oldestQueuedAgeMs: oldest === null || oldest === undefined
            ? null
            : now - int(oldest),
          dueFailed: int(dueFailed ?? 0),
          started: int(started ?? 0),
          totals,
          queues,
        });
      } finally {
        db.exec("COMMIT");
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deletes at most `limit` finished tasks that `policy` no longer keeps
   * at `now`, queue by queue, each queue's oldest `updatedAt` first across
   * both statuses (then insertion order), in one `BEGIN IMMEDIATE`
   * transaction: a few index range reads bounded by `limit` (each
   * status's partial index on `(queue, updated_at)`), then one `DELETE` by
   * rowid. A task is pruned once it finished before `now - maxAgeMs`, or
   * is not among the newest `maxCount` of its status in its queue, by its
   * queue's rules. The same transaction lowers the counts;
   * the totals stay. Never `skipped`: SQLite has one writer at a time.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @param limit The most tasks to delete in this call.
   * @returns How many tasks of each status were deleted.
   * @throws {TypeError} When the policy, a rule or `limit` has the wrong type.
   * @throws {RangeError} When a limit is negative or not an integer where
   *   one is needed, `now` is not finite, or the policy names another status.
   * @throws {SqliteError} When SQLite fails; nothing is deleted.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Pruning dead tasks older than an hour
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const { inserted } = await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: "k", payload: 1, maxAttempts: 1, runAt: 0, claim: true }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const { id, version } = inserted[0]!.record;
   * await store.commit({
   *   settles: [{ id, version, outcome: { kind: "dead", error: "Cannot run: bad", errorClass: "permanent" } }],
   *   inserts: [],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 1,
   * });
   * const policy = { dead: { maxAgeMs: 3_600_000 } };
   * assert.equal((await store.prune(policy, 3_600_001, 1000)).dead, 0);
   * assert.equal((await store.prune(policy, 3_600_002, 1000)).dead, 1);
   * assert.equal(await store.getByKey("k"), undefined);
   * assert.deepEqual((await store.status(3_600_002)).totals, { submitted: 1, succeeded: 0, dead: 1 });
   * ```
   */
  prune(
    policy: RetentionPolicy,
    now: number,
    limit: number,
  ): Promise<PruneResult> {
    const waiting = this.#afterInsertAll(() => this.prune(policy, now, limit));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("prune tasks", true);
      const checked = checkRetention(policy, now, "prune tasks");
      checkPruneLimit(limit);
      const result: PruneResult = { succeeded: 0, dead: 0, skipped: false };
      if (limit === 0) return Promise.resolve(result);
      return Promise.resolve(this.#transaction(db, (tally) => {
        const rowids: number[] = [];
        for (const [queue, counts] of this.#finishedCounts(db)) {
          const room = limit - rowids.length;
          if (room <= 0) break;
          const rules = rulesOf(checked, queue);
          const succeeded = oldestPrunable(
            db,
            QUERIES.oldestSucceeded,
            QUERIES.oldestSucceededBefore,
            queue,
            rules.succeeded,
            counts.succeeded,
            room,
          );
          const dead = oldestPrunable(
            db,
            QUERIES.oldestDead,
            QUERIES.oldestDeadBefore,
            queue,
            rules.dead,
            counts.dead,
            room,
          );
          // Merge the two oldest-first lists and keep the first `room`.
          let i = 0;
          let j = 0;
          while (i + j < room) {
            const s = succeeded[i];
            const d = dead[j];
            if (s === undefined && d === undefined) break;
            if (
              d === undefined ||
              (s !== undefined && (s.u < d.u || (s.u === d.u && s.r < d.r)))
            ) {
              rowids.push(s!.r);
              i++;
            } else {
              rowids.push(d.r);
              j++;
            }
          }
          result.succeeded += i;
          result.dead += j;
          tally.move(queue, "succeeded", null, i);
          tally.move(queue, "dead", null, j);
        }
        if (rowids.length > 0) {
          db.prepare(QUERIES.deleteRows).run(JSON.stringify(rowids));
        }
        return result;
      }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Counts what {@linkcode SqliteTaskStore.prune} would delete if called
   * until it deletes nothing, at the same `now`, changing nothing: the
   * rows beyond the count kept (from the kept counts) or finished before
   * the cutoff (counted in the status's `updated_at` index), whichever is
   * more. Works read-only.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @returns How many tasks of each status would go; `skipped` is `false`.
   * @throws {TypeError} When the policy or a rule has the wrong type.
   * @throws {RangeError} When a limit is out of range or `now` not finite.
   * @throws {Error} When the store is closed.
   *
   * @example Counting before purging
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const counted = await store.prunable({ succeeded: { maxCount: 0 } }, Date.now());
   * assert.deepEqual(counted, { succeeded: 0, dead: 0, skipped: false });
   * ```
   */
  prunable(policy: RetentionPolicy, now: number): Promise<PruneResult> {
    const waiting = this.#afterInsertAll(() => this.prunable(policy, now));
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("count prunable tasks", false);
      const checked = checkRetention(policy, now, "count prunable tasks");
      db.exec("BEGIN");
      try {
        const result: PruneResult = { succeeded: 0, dead: 0, skipped: false };
        const count = (
          queue: string,
          rule: CheckedRule,
          n: number,
          query: string,
        ): number => {
          const over = rule.keep === null ? 0 : Math.max(0, n - rule.keep);
          const old = rule.before === null
            ? 0
            : int(db.prepare(query).get(queue, rule.before)?.["n"] ?? 0);
          return Math.max(over, old);
        };
        for (const [queue, counts] of this.#finishedCounts(db)) {
          const { succeeded, dead } = rulesOf(checked, queue);
          result.succeeded += count(
            queue,
            succeeded,
            counts.succeeded,
            QUERIES.countSucceededBefore,
          );
          result.dead += count(
            queue,
            dead,
            counts.dead,
            QUERIES.countDeadBefore,
          );
        }
        return Promise.resolve(result);
      } finally {
        db.exec("COMMIT");
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Recomputes the counts by status from the rows, in one `BEGIN
   * IMMEDIATE` transaction that reads the whole table (O(rows)); the
   * totals stay. For operators: the counts are kept by this store's own
   * statements, so task statuses changed by other SQL (by hand, or by a
   * Sluice process older than schema version 5 still writing during an
   * upgrade) leave them off until a recount.
   *
   * @returns A promise that settles once the counts are recomputed.
   * @throws {SqliteError} When SQLite fails; the counts are unchanged.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Recounting a store whose counts are exact changes nothing
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 };
   * await store.commit({
   *   settles: [],
   *   inserts: [{ ...task, id: "a" }, { ...task, id: "b", claim: true }],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * const before = await store.status(0);
   * await store.recount();
   * assert.deepEqual(await store.status(0), before);
   * assert.deepEqual([before.counts.queued, before.counts.running], [1, 1]);
   * ```
   */
  recount(): Promise<void> {
    const waiting = this.#afterInsertAll(() => this.recount());
    if (waiting !== undefined) return waiting;
    try {
      const db = this.#check("recount tasks", true);
      this.#transaction(db, () => {
        db.prepare(QUERIES.zeroCounts).run();
        db.prepare(QUERIES.recount).run();
      });
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The kept counts of the finished statuses, of each queue holding any. */
  #finishedCounts(
    db: Database,
  ): Map<string, { succeeded: number; dead: number }> {
    const byQueue = new Map<string, { succeeded: number; dead: number }>();
    for (const row of db.prepare(QUERIES.countsOf).all()) {
      const queue = row["queue"] as string;
      let counts = byQueue.get(queue);
      if (counts === undefined) {
        byQueue.set(queue, counts = { succeeded: 0, dead: 0 });
      }
      counts[row["status"] as "succeeded" | "dead"] = int(row["n"]);
    }
    return byQueue;
  }

  /**
   * How many settles were refused because their fencing token was stale,
   * since the database was created. Kept in the database, so it survives
   * restarts.
   *
   * @returns The count.
   * @throws {Error} When the store is closed.
   *
   * @example A fresh store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.staleSettles(), 0);
   * ```
   */
  staleSettles(): Promise<number> {
    const waiting = this.#afterInsertAll(() => this.staleSettles());
    if (waiting !== undefined) return waiting;
    try {
      const row = this.#check("read counters", false).prepare(
        QUERIES.staleSettles,
      ).get();
      return Promise.resolve(int(row?.["value"] ?? 0));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs `call` once no `insertAll` holds the connection, turning a throw
   * into a rejection.
   */
  #call<T>(call: () => T): Promise<T> {
    const waiting = this.#afterInsertAll(() => this.#call(call));
    if (waiting !== undefined) return waiting;
    try {
      return Promise.resolve(call());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stores a schedule, replacing the one of the same name (keeping its
   * `createdAt` and `lastTick`).
   *
   * @param schedule The schedule.
   * @param now The time of the write (epoch ms).
   * @returns The stored schedule.
   * @throws {TypeError} When the task is not plain JSON data.
   * @throws {Error} When the store is closed or read-only.
   */
  putSchedule(schedule: NewSchedule, now: number): Promise<ScheduleRecord> {
    return this.#call(() => {
      const db = this.#check("store schedule", true);
      const task = serializeJson(
        schedule.task,
        "store schedule",
        schedule.name,
        "task",
      )!;
      return scheduleFromRow(
        db.prepare(SCHEDULE_QUERIES.put).get(
          schedule.name,
          schedule.cron,
          schedule.tz,
          task,
          schedule.nextTick,
          now,
          now,
        )!,
      );
    });
  }

  /**
   * Deletes a schedule.
   *
   * @param name Its name.
   * @returns `false` when there was none.
   * @throws {Error} When the store is closed or read-only.
   */
  deleteSchedule(name: string): Promise<boolean> {
    return this.#call(() =>
      this.#check("delete schedule", true)
        .prepare(SCHEDULE_QUERIES.delete).run(name).changes > 0
    );
  }

  /**
   * Every schedule, by name.
   *
   * @returns The schedules.
   * @throws {Error} When the store is closed.
   */
  listSchedules(): Promise<ScheduleRecord[]> {
    return this.#call(() =>
      this.#check("list schedules", false)
        .prepare(SCHEDULE_QUERIES.list).all().map(scheduleFromRow)
    );
  }

  /**
   * Runs one tick of a schedule: the compare-and-set on its version and
   * the insert of its task, in one transaction.
   *
   * @param fire The tick.
   * @returns Whether it fired, and the insert's outcome.
   * @throws {TypeError} When the task's payload is not plain JSON data.
   * @throws {SqliteError} When SQLite fails; nothing is written.
   * @throws {Error} When the store is closed or read-only.
   */
  fireSchedule(fire: ScheduleFire): Promise<ScheduleFireOutcome> {
    return this.#call(() => {
      const db = this.#check("run schedule", true);
      const batch = insertOnlyBatch([fire.task], fire.now);
      const payload = serializeJson(
        fire.task.payload,
        "store task",
        fire.task.id,
        "payload",
      )!;
      return this.#transaction(db, (tally): ScheduleFireOutcome => {
        const changes = db.prepare(SCHEDULE_QUERIES.fire).run(
          fire.tick,
          fire.nextTick,
          fire.now,
          fire.name,
          fire.version,
          fire.tick,
        ).changes;
        if (changes === 0) return { fired: false, inserted: null };
        const [inserted] = this.#insert(
          db,
          batch.inserts,
          [payload],
          fire.now,
          fire.now,
          tally,
          new Set(),
        );
        return { fired: true, inserted: inserted! };
      });
    });
  }

  /**
   * Finalizes the statements and closes the connection. Idempotent.
   *
   * @returns A promise that settles once closed.
   *
   * @example Closing twice
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const store = SqliteTaskStore.open(":memory:");
   * await store.close();
   * await store.close();
   * await assert.rejects(store.get("x"), /closed/);
   * ```
   */
  close(): Promise<void> {
    if (this.#insertingAll !== undefined) {
      this.#stopInsertAll = true;
      return this.#insertingAll.then(() => this.close());
    }
    if (!this.#closed) {
      this.#closed = true;
      this.#db.close();
    }
    return Promise.resolve();
  }

  /**
   * Closes the store, for `await using`.
   *
   * @returns A promise that settles once closed.
   *
   * @example Scoped store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice/store";
   *
   * await using _store = SqliteTaskStore.open(":memory:");
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The path the store was opened with. */
  get path(): string {
    return this.#path;
  }
}
