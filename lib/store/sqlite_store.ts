/**
 * The durable task store: SQLite through either driver, in WAL mode, with
 * every batch of queue work applied in one `BEGIN IMMEDIATE` transaction.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import { serializeJson } from "./_json.ts";
import { newRecord } from "./_record.ts";
import type { ErrorClass } from "../errors.ts";
import type { Database, Row, SqlValue } from "./database.ts";
import {
  applyPragmas,
  checkSchemaVersion,
  migrate,
  QUERIES,
  SCHEMA_VERSION,
  SYNCHRONOUS_MODES,
} from "./schema.ts";
import { openDatabase } from "./sqlite.ts";
import type {
  CommitBatch,
  CommitResult,
  InsertOutcome,
  ListOptions,
  StatusCounts,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "./store.ts";
import {
  emptyCounts,
  LEASE_EXPIRED_MESSAGE,
  validateBatch,
  validateList,
  validateWindow,
} from "./_shared.ts";

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

function toRecord(row: Row): TaskRecord {
  const result = row["result"];
  return {
    id: row["id"] as string,
    type: row["type"] as string,
    idempotencyKey: textOrNull(row["idempotency_key"]),
    payload: JSON.parse(row["payload"] as string),
    status: row["status"] as TaskStatus,
    attempts: int(row["attempts"]),
    maxAttempts: int(row["max_attempts"]),
    runAt: int(row["run_at"]),
    leaseUntil: intOrNull(row["lease_until"]),
    createdAt: int(row["created_at"]),
    updatedAt: int(row["updated_at"]),
    outputKey: textOrNull(row["output_key"]),
    result: result === null || result === undefined
      ? null
      : JSON.parse(result as string),
    lastError: textOrNull(row["last_error"]),
    errorClass: textOrNull(row["error_class"]) as ErrorClass | null,
    version: int(row["version"]),
  };
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
 * import { SqliteTaskStore } from "@sluice/sluice";
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
 *   claimIds: [],
 *   claimDue: 10,
 *   leaseMs: 30_000,
 *   now,
 * });
 * assert.equal(first.inserted[0]?.inserted, true);
 * const claim = first.claimed[0]!;
 * assert.equal(claim.status, "running");
 *
 * const second = await store.commit({
 *   settles: [{
 *     id: claim.id,
 *     version: claim.version,
 *     outcome: { kind: "succeeded", result: 6, outputKey: null },
 *   }],
 *   inserts: [],
 *   claimIds: [],
 *   claimDue: 0,
 *   leaseMs: 30_000,
 *   now: now + 1,
 * });
 * assert.deepEqual(second.settled, [true]);
 * assert.equal((await store.get("t1"))?.result, 6);
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
   * read-only store checks the schema instead of migrating it.
   *
   * @param path A file path, or `":memory:"`.
   * @param options Driver, durability and locking settings.
   * @returns The open store; close it with `close()` or `await using`.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws {SqliteError} When SQLite cannot open the file (missing
   *   directory, not a database, no permission).
   * @throws {Error} When the file's schema is newer than this code knows, or
   *   a read-only store finds no schema.
   *
   * @example Opening a file store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const dir = await Deno.makeTempDir();
   * const store = SqliteTaskStore.open(`${dir}/tasks.db`, { synchronous: "FULL" });
   * assert.equal(store.durable, true);
   * assert.match(store.kind, /^sqlite-(ffi|builtin)$/);
   * await store.close();
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
    const db = openDatabase(path, { driver, readonly });
    try {
      applyPragmas(db, { synchronous, busyTimeoutMs, wal: false });
      if (readonly) {
        const found = checkSchemaVersion(db, path);
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
   * @throws {TypeError} When the payload is not JSON-serializable (BigInt,
   *   a cycle, or a top-level `undefined`, function or symbol).
   *
   * @example Refusing a BigInt payload
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * assert.equal(SqliteTaskStore.serializePayload({ a: 1 }), '{"a":1}');
   * assert.throws(() => SqliteTaskStore.serializePayload({ n: 1n }), TypeError);
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
   * @throws {TypeError} When the result is not JSON-serializable (BigInt, a
   *   cycle, or a top-level function or symbol).
   *
   * @example Checking results before settling
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
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
   * @throws {TypeError} When it is not JSON-serializable.
   */
  checkValue(value: unknown, what: "payload" | "result"): void {
    if (what === "payload") SqliteTaskStore.serializePayload(value);
    else SqliteTaskStore.serializeResult(value);
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

  /** Runs `body` inside `BEGIN IMMEDIATE` … `COMMIT`, rolling back on error. */
  #transaction<T>(db: Database, body: () => T): T {
    db.prepare(QUERIES.begin).run();
    try {
      const result = body();
      // A failed COMMIT (I/O error, disk full) leaves the transaction open
      // on this connection, so it is rolled back like any other failure.
      db.prepare(QUERIES.commit).run();
      return result;
    } catch (error) {
      try {
        db.prepare(QUERIES.rollback).run();
      } catch {
        // SQLite may already have rolled back (e.g. after SQLITE_FULL).
      }
      throw error;
    }
  }

  /**
   * Applies one batch in one transaction, in order: settles, inserts,
   * claims by id, claims of due tasks. Either all of it is applied or none.
   *
   * @param batch The work to apply.
   * @returns What was settled, inserted and claimed.
   * @throws {TypeError} When a payload or result is not JSON-serializable;
   *   nothing is applied.
   * @throws {RangeError} When a batch field is out of range.
   * @throws {SqliteError} When SQLite fails; the transaction is rolled back.
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Claiming due work
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const { claimed } = await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *   claimIds: [],
   *   claimDue: 5,
   *   leaseMs: 1000,
   *   now: 10,
   * });
   * assert.deepEqual(claimed.map((task) => [task.id, task.attempts, task.leaseUntil]), [["a", 1, 1010]]);
   * ```
   */
  commit(batch: CommitBatch): Promise<CommitResult> {
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
    return this.#transaction(db, () => {
      const settled: boolean[] = [];
      let stale = 0;
      for (let i = 0; i < batch.settles.length; i++) {
        const { id, version, outcome } = batch.settles[i]!;
        let changes: number;
        switch (outcome.kind) {
          case "succeeded":
            changes = db.prepare(QUERIES.settleSucceeded).run(
              results[i] ?? null,
              outcome.outputKey,
              now,
              id,
              version,
            ).changes;
            break;
          case "retry":
            changes = db.prepare(QUERIES.settleRetry).run(
              outcome.runAt,
              outcome.error,
              outcome.errorClass,
              now,
              id,
              version,
            ).changes;
            break;
          case "dead":
            changes = db.prepare(QUERIES.settleDead).run(
              outcome.error,
              outcome.errorClass,
              now,
              id,
              version,
            ).changes;
            break;
        }
        settled.push(changes > 0);
        if (changes === 0) stale++;
      }
      if (stale > 0) db.prepare(QUERIES.countStale).run(stale);

      const renewed: boolean[] = [];
      for (const { id, version, leaseUntil } of batch.renewals ?? []) {
        renewed.push(
          db.prepare(QUERIES.renew).run(leaseUntil, id, version).changes > 0,
        );
      }

      const inserted: InsertOutcome[] = [];
      const insertLease = now + batch.leaseMs;
      for (let i = 0; i < batch.inserts.length; i++) {
        const task = batch.inserts[i]!;
        const claim = task.claim === true;
        const { changes } = db.prepare(QUERIES.insert).run(
          task.id,
          task.type,
          task.idempotencyKey,
          payloads[i]!,
          claim ? "running" : "queued",
          claim ? 1 : 0,
          task.maxAttempts,
          task.runAt,
          claim ? insertLease : null,
          now,
          now,
          claim ? 1 : 0,
        );
        if (changes > 0) {
          inserted.push({
            inserted: true,
            record: newRecord(task, now, insertLease),
          });
        } else {
          // Only the idempotency key can conflict without throwing, so the
          // existing row (possibly inserted earlier in this batch) exists.
          const row = db.prepare(QUERIES.byKey).get(task.idempotencyKey);
          inserted.push({ inserted: false, record: toRecord(row!) });
        }
      }

      const claimed: TaskRecord[] = [];
      const leaseUntil = now + batch.leaseMs;
      for (const id of batch.claimIds) {
        const row = db.prepare(QUERIES.claimId).get(leaseUntil, now, id, now);
        if (row !== undefined) claimed.push(toRecord(row));
      }
      if (batch.claimDue > 0) {
        const rows = db.prepare(QUERIES.claimDue).all(
          leaseUntil,
          now,
          now,
          batch.claimDue,
        );
        // RETURNING yields rows in update order, not claim order.
        rows.sort((a, b) =>
          int(a["run_at"]) - int(b["run_at"]) || int(a["seq"]) - int(b["seq"])
        );
        for (const row of rows) claimed.push(toRecord(row));
      }
      return { settled, renewed, inserted, claimed };
    });
  }

  /**
   * Returns running tasks whose lease ended before `now` to `queued`, or to
   * `dead` when that claim was their last attempt. Each gets a new version,
   * so a late settle from the old claim is refused.
   *
   * @param now The current time (epoch ms).
   * @returns How many tasks were recovered (requeued or dead-lettered).
   * @throws {Error} When the store is closed or read-only.
   *
   * @example Recovering after a crash
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * await store.commit({
   *   settles: [],
   *   inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: null, maxAttempts: 3, runAt: 0 }],
   *   claimIds: ["a"],
   *   claimDue: 0,
   *   leaseMs: 100,
   *   now: 0,
   * });
   * assert.equal(await store.recoverExpired(500), 1);
   * assert.equal((await store.get("a"))?.status, "queued");
   * ```
   */
  recoverExpired(now: number): Promise<number> {
    try {
      const db = this.#check("recover expired leases", true);
      return Promise.resolve(this.#transaction(db, () => {
        const dead = db.prepare(QUERIES.expireToDead).run(
          LEASE_EXPIRED_MESSAGE,
          now,
          now,
        ).changes;
        const queued = db.prepare(QUERIES.expireToQueued).run(now, now)
          .changes;
        return dead + queued;
      }));
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
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.get("nope"), undefined);
   * ```
   */
  get(id: string): Promise<TaskRecord | undefined> {
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
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.getByKey("nope"), undefined);
   * ```
   */
  getByKey(key: string): Promise<TaskRecord | undefined> {
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
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.deepEqual(await store.list({ status: "queued", limit: 10 }), []);
   * ```
   */
  list(options: ListOptions = {}): Promise<TaskRecord[]> {
    try {
      const db = this.#check("list tasks", false);
      const { status, limit, offset } = validateList(options);
      const rows = status === undefined
        ? db.prepare(QUERIES.listAll).all(limit ?? -1, offset)
        : status === "dead"
        ? db.prepare(QUERIES.listDead).all(limit ?? -1, offset)
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
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.requeue("all", Date.now()), 0);
   * ```
   */
  requeue(ids: string[] | "all", now: number): Promise<number> {
    try {
      const db = this.#check("requeue tasks", true);
      return Promise.resolve(this.#transaction(db, () => {
        if (ids === "all") {
          return db.prepare(QUERIES.requeueAll).run(now, now).changes;
        }
        let count = 0;
        for (const id of ids) {
          count += db.prepare(QUERIES.requeueId).run(now, now, id).changes;
        }
        return count;
      }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads counts by status, the age of the oldest due claimable task
   * (queued, or failed and due), and how many succeeded within `windowMs`.
   * Works on a read-only store while a writer is active.
   *
   * @param now The current time (epoch ms).
   * @param windowMs The window for `recentSucceeded`.
   * @returns The snapshot.
   * @throws {RangeError} When `windowMs` is negative or not finite.
   * @throws {Error} When the store is closed.
   *
   * @example An empty store
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * const status = await store.status(Date.now());
   * assert.equal(status.counts.queued, 0);
   * assert.equal(status.oldestQueuedAgeMs, null);
   * ```
   */
  status(now: number, windowMs: number = 60_000): Promise<StoreStatus> {
    try {
      validateWindow(windowMs);
      const db = this.#check("read status", false);
      // One read transaction so the three reads see one snapshot.
      db.exec("BEGIN");
      try {
        const counts: StatusCounts = emptyCounts();
        for (const row of db.prepare(QUERIES.countByStatus).all()) {
          counts[row["status"] as TaskStatus] = int(row["n"]);
        }
        const oldest = db.prepare(QUERIES.oldestDue).get(now)?.["oldest"];
        const recent = db.prepare(QUERIES.recentSucceeded).get(now - windowMs)
          ?.["n"];
        return Promise.resolve({
          counts,
          oldestQueuedAgeMs: oldest === null || oldest === undefined
            ? null
            : now - int(oldest),
          recentSucceeded: int(recent ?? 0),
          windowMs,
        });
      } finally {
        db.exec("COMMIT");
      }
    } catch (error) {
      return Promise.reject(error);
    }
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
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * await using store = SqliteTaskStore.open(":memory:");
   * assert.equal(await store.staleSettles(), 0);
   * ```
   */
  staleSettles(): Promise<number> {
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
   * Finalizes the statements and closes the connection. Idempotent.
   *
   * @returns A promise that settles once closed.
   *
   * @example Closing twice
   * ```ts
   * import { SqliteTaskStore } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const store = SqliteTaskStore.open(":memory:");
   * await store.close();
   * await store.close();
   * await assert.rejects(store.get("x"), /closed/);
   * ```
   */
  close(): Promise<void> {
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
   * import { SqliteTaskStore } from "@sluice/sluice";
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
