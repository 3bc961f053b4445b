/**
 * The PostgreSQL task store: many processes on many hosts draining one
 * queue. Claims take rows with `FOR UPDATE SKIP LOCKED`, so no task is
 * handed to two claimers; each batch of queue work is one transaction of a
 * fixed number of statements; new work is announced with `NOTIFY`.
 *
 * The client (the npm package `postgres`) is loaded on the first
 * {@linkcode PostgresTaskStore.open}, so importing Sluice costs SQLite users
 * nothing and needs no network permission.
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import type postgres from "npm:postgres@3.4.9";
import { delay } from "../../_delay.ts";
import { keptCounts } from "../_counts.ts";
import { type JsonRule, serializeJson } from "../_json.ts";
import { newRecord } from "../_record.ts";
import type { ErrorClass } from "../../errors.ts";
import {
  CANCELLED_MESSAGE,
  type CheckedPolicy,
  type CheckedRule,
  checkPruneLimit,
  checkQueueName,
  checkRetention,
  DEFAULT_QUEUE,
  insertOnlyBatch,
  LEASE_EXPIRED_MESSAGE,
  validateBatch,
  validateList,
} from "../_shared.ts";
import {
  NOTIFY_CHANNEL,
  POSTGRES_MIGRATIONS,
  POSTGRES_SCHEMA_VERSION,
  type PostgresQueries,
  postgresQueries,
  validateSchemaName,
} from "./schema.ts";
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
  StateWrite,
  StoreStatus,
  TaskRecord,
  TaskStatus,
  TaskStore,
} from "../store.ts";
import {
  scheduleFromRow,
  type ScheduleQueries,
  scheduleQueries,
} from "./schedules.ts";

/** Options for {@linkcode PostgresTaskStore.open}. */
export interface PostgresTaskStoreOptions {
  /**
   * The schema Sluice owns in the database: its tables, indexes and
   * migrations live there. Lower-case letters, digits and `_`.
   *
   * @default {"sluice"}
   */
  schema?: string;
  /**
   * Connections in the pool (from 1 to 100). A `LISTEN` subscription uses
   * one more.
   *
   * @default {4}
   */
  max?: number;
  /**
   * Whether commits that add claimable work send `NOTIFY`, and
   * {@linkcode PostgresTaskStore.onNotify} listens for it. Without it,
   * other processes find new work only by polling.
   *
   * @default {true}
   */
  notify?: boolean;
  /**
   * Open for reading only (status readers, monitors): nothing is created
   * or migrated, the schema must already hold a Sluice queue at the
   * current version, and every write method throws.
   *
   * @default {false}
   */
  readonly?: boolean;
}

/** Options for {@linkcode PostgresTaskStore.drop}. */
export interface PostgresDropOptions {
  /**
   * The schema to drop.
   *
   * @default {"sluice"}
   */
  schema?: string;
}

type Sql = postgres.Sql;
type Row = postgres.Row;

const MAX_POOL = 100;
const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;

/** A lone surrogate or NUL escape: valid JSON, refused by `jsonb` and `text`. */
const JSONB_UNSAFE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** What `jsonb` refuses beyond plain JSON. */
const JSONB_RULE: JsonRule = {
  refuse: JSONB_UNSAFE,
  reason: "it contains U+0000 or a lone surrogate, which jsonb cannot hold",
};

/**
 * JSON text for a payload or result, checked against what `jsonb` accepts.
 * `undefined` is refused, except as a result (a handler that returns
 * nothing), which is stored as SQL `NULL`.
 */
function jsonText(
  value: unknown,
  action: string,
  id: string | undefined,
  what: string,
  allowUndefined: boolean,
): string | null {
  return serializeJson(value, action, id, what, allowUndefined, JSONB_RULE);
}

/** Checks a string a text column will hold verbatim (ids, keys, types). */
function checkText(value: string, action: string, what: string): void {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot ${action}: ${what} must be a string, got ${typeof value}`,
    );
  }
  if (value.includes("\0") || !value.isWellFormed()) {
    throw new TypeError(
      `Cannot ${action}: ${what} ${
        JSON.stringify(value)
      } contains U+0000 or a lone surrogate, which PostgreSQL text cannot hold`,
    );
  }
}

/** Error messages come from handlers: made storable rather than refused. */
function storableMessage(message: string): string {
  return message.toWellFormed().replaceAll("\0", "\uFFFD");
}

/** A task's key window end as stored: rounded up, like `runAt`. */
function dedupeUntil(task: NewTask): number | null {
  const until = task.dedupeUntil;
  return until === undefined || until === null ? null : Math.ceil(until);
}

/** Checks an epoch-ms time fits `bigint` exactly. */
function checkTime(value: number, action: string, what: string): void {
  if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(
      `Cannot ${action}: ${what} must be within ±${Number.MAX_SAFE_INTEGER}, got ${value}`,
    );
  }
}

function toRecord(row: Row): TaskRecord {
  return {
    id: row["id"],
    type: row["type"],
    queue: row["queue"],
    priority: row["priority"],
    idempotencyKey: row["idempotency_key"],
    payload: row["payload"],
    status: row["status"],
    attempts: row["attempts"],
    maxAttempts: row["max_attempts"],
    runAt: row["run_at"],
    leaseUntil: row["lease_until"],
    startedAt: row["started_at"] ?? null,
    createdAt: row["created_at"],
    updatedAt: row["updated_at"],
    dedupeUntil: row["dedupe_until"] ?? null,
    outputKey: row["output_key"],
    result: row["result"] ?? null,
    lastError: row["last_error"],
    errorClass: row["error_class"] as ErrorClass | null,
    progress: row["progress"] ?? null,
    checkpoint: row["checkpoint"] ?? null,
    version: row["version"],
  };
}

/**
 * The rows of a progress or checkpoint statement, as JSON text: one per
 * distinct (id, version) pair, holding the pair's last value (an
 * `UPDATE … FROM` changes a row once, with whichever source row it
 * meets first).
 */
function stateRows(
  writes: readonly StateWrite[],
  what: "progress" | "checkpoint",
): string {
  const last = new Map<string, string>();
  for (const { id, version, value } of writes) {
    const json = value === null
      ? "null"
      : jsonText(value, `record ${what} of task`, id, what, false)!;
    const pair = pairKey(id, version);
    // Re-inserted so the map keeps one row per pair.
    last.delete(pair);
    last.set(pair, `{"id":${JSON.stringify(id)},"v":${version},"j":${json}}`);
  }
  return `[${[...last.values()].join(",")}]`;
}

/** A claim's fencing pair as one map key (ids hold no NUL: validateBatch). */
function pairKey(id: string, version: number): string {
  return `${id}\u0000${version}`;
}

/** The `(id, v)` pairs statement `index` returned, or none when it was not sent. */
function returnedPairs(results: Row[][], index: number): Set<string> {
  const pairs = new Set<string>();
  if (index < 0) return pairs;
  for (const row of results[index]!) pairs.add(pairKey(row["id"], row["v"]));
  return pairs;
}

/** SQLSTATEs of a transaction the server aborted and that may simply be re-run. */
const RETRYABLE: ReadonlySet<string> = new Set([
  "40P01", // deadlock_detected
  "40001", // serialization_failure
]);
/** Tries of a commit the server aborted as a deadlock or serialization failure. */
const COMMIT_TRIES = 5;

/**
 * A store folds the count deltas into the count rows once every this many
 * of its commits (when no other transaction is folding), so that a status
 * read sums a few hundred delta rows at most, whether or not anyone
 * prunes.
 */
const FOLD_EVERY = 64;

/** A count that keeps everything: larger than any table. */
const KEEP_ALL = Number.MAX_SAFE_INTEGER;

/** A cutoff that lets nothing go: earlier than any time stored. */
const NO_CUTOFF = -Number.MAX_SAFE_INTEGER;

/** A checked rule as the prune and prunable statements bind it. */
function ruleParams(rule: CheckedRule): [number, number] {
  return [
    rule.keep ?? KEEP_ALL,
    rule.before === null
      ? NO_CUTOFF
      : Math.min(Math.ceil(rule.before), Number.MAX_SAFE_INTEGER),
  ];
}

/**
 * A checked policy as the prune and prunable statements bind it: the
 * policy's succeeded and dead rules, then the named queues' rules as JSON.
 */
function policyParams(
  policy: CheckedPolicy,
): [number, number, number, number, string] {
  return [
    ...ruleParams(policy.succeeded),
    ...ruleParams(policy.dead),
    JSON.stringify([...policy.queues].map(([q, rules]) => {
      const [sk, sb] = ruleParams(rules.succeeded);
      const [dk, db] = ruleParams(rules.dead);
      return { q, sk, sb, dk, db };
    })),
  ];
}

/**
 * Sends a commit's statements as one simple-protocol query, so they run as
 * one implicit transaction in one round trip, and re-sends it when the
 * server aborted it as a deadlock or serialization failure: then nothing
 * of it was applied. The backoff is short and jittered so the transactions
 * that collided do not collide again.
 *
 * No BEGIN/COMMIT is sent, so nothing is ever written to a connection the
 * server has just dropped (the client's post-close write path would throw
 * outside any promise); a drop rejects this query and applies nothing.
 */
async function runStatements(
  sql: Sql,
  statements: string[],
  tries: number = COMMIT_TRIES,
): Promise<Row[][]> {
  const text = statements.join(";\n");
  for (let attempt = 1;; attempt++) {
    try {
      const raw = await sql.unsafe(text).simple();
      return (statements.length === 1 ? [raw] : raw) as Row[][];
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (
        attempt >= tries || typeof code !== "string" ||
        !RETRYABLE.has(code)
      ) {
        throw error;
      }
      await delay(2 ** attempt * (0.5 + Math.random()));
    }
  }
}

/**
 * Whether `error` says the connection itself is gone (the client's codes,
 * such as `ECONNRESET` or `CONNECTION_CLOSED`), rather than the server
 * refusing a statement (a `PostgresError`, with a severity and a
 * five-character SQLSTATE) or a check failing before anything was sent.
 */
function connectionLost(error: unknown): boolean {
  const { code, severity } = (error ?? {}) as {
    code?: unknown;
    severity?: unknown;
  };
  return typeof code === "string" && severity === undefined &&
    !/^[0-9A-Z]{5}$/.test(code);
}

function run(
  sql: Sql | postgres.TransactionSql,
  text: string,
  params: unknown[] = [],
): Promise<Row[]> {
  return sql.unsafe(text, params as never[], { prepare: true });
}

/**
 * Substitutes literals for the `$n` placeholders of a statement, for the
 * simple protocol (which takes no parameters). Strings become escape
 * string constants (`E'…'`, whose meaning does not depend on
 * `standard_conforming_strings`); numbers must be safe integers. Strings
 * were checked to hold no NUL before they got here.
 */
function inline(
  text: string,
  values: readonly (string | number | boolean | null)[],
): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const value = values[Number(n) - 1];
    if (value === null) return "NULL";
    if (typeof value === "boolean") return String(value);
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) {
        throw new RangeError(
          `Cannot commit: ${value} is not a safe integer`,
        );
      }
      return String(value);
    }
    if (typeof value !== "string") {
      throw new TypeError(`Cannot commit: no value for $${n}`);
    }
    return `E'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
  });
}

/**
 * A transaction of the `postgres` client (the npm package `postgres`, the
 * client this store uses): the `tx` that `sql.begin(async (tx) => …)`
 * passes to its callback, or a savepoint's. Only what the store calls is
 * named, so a transaction of any 3.x version of the client fits.
 *
 * Its client must parse `json` columns (the default) and must not
 * transform column names or values (no `transform` option, such as
 * `postgres.camel`): the store reads its own rows back through it.
 */
export interface PostgresTransaction {
  /**
   * Sends a statement (the client's `unsafe`).
   *
   * @param query The statement text.
   * @param parameters Its parameters.
   * @param options Whether to prepare it.
   * @returns The pending query.
   */
  unsafe(
    query: string,
    parameters?: never[],
    options?: { prepare?: boolean },
  ): PromiseLike<unknown> & { simple(): PromiseLike<unknown> };
  /**
   * Opens a savepoint. Only a transaction has it: a pool (`sql`) or a
   * reserved connection, which would commit the insert on its own, is
   * refused.
   *
   * @param args As the client takes them.
   * @returns As the client returns it.
   */
  savepoint(...args: never[]): unknown;
}

/** What {@linkcode PostgresTaskStore.insertWith} did in the caller's transaction. */
export interface TransactionInsert {
  /**
   * Per task, in order: inserted (visible to others once the transaction
   * commits), or answered by the task already holding its idempotency key.
   */
  inserted: InsertOutcome[];
  /**
   * The transaction's id (`pg_current_xact_id()` as text), to ask with
   * {@linkcode PostgresTaskStore.transactionStates} whether it committed.
   */
  transactionId: string;
}

/**
 * How a transaction ended, as `pg_xact_status` reports it; `"unknown"`
 * when it is too old for the server to remember.
 */
export type TransactionState =
  | "in progress"
  | "committed"
  | "aborted"
  | "unknown";

/** The current transaction's id; assigns one if it has none yet. */
const TRANSACTION_ID = "SELECT pg_current_xact_id()::text AS xid";
/** The fate of each transaction id of `$1` (JSON array of decimal strings), in order. */
const TRANSACTION_STATES = `SELECT pg_xact_status(x::xid8) AS state
  FROM json_array_elements_text($1::text::json) WITH ORDINALITY AS u(x, o)
  ORDER BY o`;
const TRANSACTION_ID_TEXT = /^[0-9]{1,20}$/;

/** A listener registered with {@linkcode PostgresTaskStore.onNotify}. */
interface Subscription {
  listener: () => void;
}

/**
 * A {@linkcode TaskStore} in PostgreSQL, shared by any number of processes.
 *
 * - Claims are one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)
 *   RETURNING`: two claimers never get one task, and neither waits on the
 *   other's rows.
 * - A commit is one implicit transaction of at most eleven statements
 *   (renew, start, settle, release, recover, release keys, insert, claim
 *   due work, notify, count, and every 64th commit a fold) sent in one
 *   round trip, whatever the batch size; each kind of work travels as one
 *   JSON array. A duplicate idempotency key committed by another process
 *   meanwhile costs one more read.
 * - The counts by status are kept without triggers: each statement that
 *   changes statuses reports its moves (from which status to which, how
 *   many) to the transaction's count statement, which appends their net
 *   change to an insert-only delta table, folded into the count rows by
 *   prunes and every 64th commit.
 * - Inserts take the key index's locks in key order, so commits with
 *   overlapping keys do not deadlock; a commit the server aborts as a
 *   deadlock or serialization failure anyway is re-sent (nothing of it
 *   was applied).
 * - Starts, settles, releases and renewals are fenced by `version` like
 *   the SQLite store's; refused settles are counted in the schema's
 *   `meta` table.
 * - Connections carry `application_name` `sluice/<schema>`.
 * - The client reconnects by itself: a commit on a dropped connection
 *   rejects (nothing of it is applied), and the next one opens a new
 *   connection.
 *
 * Times are epoch milliseconds in `bigint` columns, read back as numbers;
 * fractional times are rounded (`runAt` up, `now` down).
 *
 * @experimental
 *
 * @example Inserting, claiming and settling a task
 * ```ts
 * import { PostgresTaskStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * const url = Deno.env.get("SLUICE_TEST_PG");
 * if (url !== undefined) {
 *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
 *   const store = await PostgresTaskStore.open(url, { schema });
 *   try {
 *     const now = Date.now();
 *     const first = await store.commit({
 *       settles: [],
 *       inserts: [{ id: "t1", type: "compute", idempotencyKey: "job-1", payload: { n: 3 }, maxAttempts: 3, runAt: now }],
 *       claimDue: 10,
 *       leaseMs: 30_000,
 *       now,
 *     });
 *     const claim = first.claimed[0]!;
 *     assert.equal(claim.status, "running");
 *     assert.equal(claim.attempts, 0); // charged when the handler starts
 *     const { id, version } = claim;
 *     const second = await store.commit({
 *       starts: [{ id, version }],
 *       settles: [{ id, version, outcome: { kind: "succeeded", result: 6, outputKey: null } }],
 *       inserts: [],
 *       claimDue: 0,
 *       leaseMs: 30_000,
 *       now: now + 1,
 *     });
 *     assert.deepEqual([second.started, second.settled], [[true], [true]]);
 *     const done = await store.get("t1");
 *     assert.equal(done?.result, 6);
 *     assert.equal(done?.attempts, 1);
 *     assert.equal(done?.startedAt, now + 1); // kept by the settle
 *   } finally {
 *     await store.close();
 *     await PostgresTaskStore.drop(url, { schema });
 *   }
 * }
 * ```
 */
export class PostgresTaskStore implements TaskStore, AsyncDisposable {
  /** Always `"postgres"`. */
  readonly kind: string = "postgres";
  /** Always `true`. */
  readonly durable: boolean = true;
  /** The schema the store's tables live in. */
  readonly schema: string;
  /**
   * How many migration steps this store's `open` applied (0 when another
   * process had, and always 0 read-only).
   */
  readonly migrationsApplied: number;
  /** Whether the store was opened read-only. */
  readonly readonly: boolean;
  #sql: Sql;
  #queries: PostgresQueries;
  #schedules: ScheduleQueries;
  #notify: boolean;
  #commits = 0;
  #closed = false;
  #closing: Promise<void> | null = null;
  // The LISTEN subscription exists while at least one listener does; the
  // client re-issues LISTEN on its own after a reconnect.
  #subscriptions = new Set<Subscription>();
  #listen: Promise<postgres.ListenMeta | null> | null = null;
  #unlistening = new Set<Promise<void>>();

  private constructor(
    sql: Sql,
    schema: string,
    notify: boolean,
    migrationsApplied: number,
    readonly: boolean,
  ) {
    this.#sql = sql;
    this.schema = schema;
    this.#queries = postgresQueries(`"${schema}"`);
    this.#schedules = scheduleQueries(`"${schema}"`);
    this.#notify = notify;
    this.migrationsApplied = migrationsApplied;
    this.readonly = readonly;
  }

  /**
   * Connects to the database at `url` and brings the store's schema up to
   * date. Migrations run in one transaction holding a transaction-scoped
   * advisory lock, so processes starting at once apply each step once.
   *
   * Read-only (`readonly: true`), nothing is created or migrated: the
   * schema must already hold a Sluice queue at the current version, the
   * sessions are read-only (`default_transaction_read_only`), and every
   * write method throws.
   *
   * @param url A `postgres://` or `postgresql://` URL.
   * @param options Schema, pool size, notification and read-only settings.
   * @returns The open store; close it with `close()` or `await using`.
   * @throws {TypeError} When the URL or an option has the wrong type.
   * @throws {RangeError} When the URL scheme or an option is out of range.
   * @throws {Error} When the server cannot be reached, the schema is newer
   *   than this code knows, or, read-only, the schema holds no Sluice queue
   *   ("Cannot open task store: schema "x" holds no Sluice queue") or an
   *   older version of it.
   *
   * @example Refusing a bad pool size before connecting
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await assert.rejects(
   *   PostgresTaskStore.open("postgres://localhost/db", { max: 0 }),
   *   RangeError,
   * );
   * await assert.rejects(PostgresTaskStore.open("tasks.db"), RangeError);
   * ```
   *
   * @example Opening read-only creates nothing
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await assert.rejects(
   *     PostgresTaskStore.open(url, { schema, readonly: true }),
   *     { message: `Cannot open task store: schema "${schema}" holds no Sluice queue` },
   *   );
   *   await (await PostgresTaskStore.open(url, { schema })).close();
   *   const reader = await PostgresTaskStore.open(url, { schema, readonly: true });
   *   try {
   *     assert.equal((await reader.status(Date.now())).counts.queued, 0);
   *     await assert.rejects(reader.requeue("all", Date.now()), /read-only/);
   *   } finally {
   *     await reader.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  static async open(
    url: string,
    options: PostgresTaskStoreOptions = {},
  ): Promise<PostgresTaskStore> {
    checkUrl(url);
    const {
      schema = "sluice",
      max = 4,
      notify = true,
      readonly = false,
    } = options;
    const quoted = validateSchemaName(schema);
    if (typeof max !== "number") {
      throw new TypeError(
        `Cannot open task store: max must be a number, got ${typeof max}`,
      );
    }
    if (!Number.isInteger(max) || max < 1 || max > MAX_POOL) {
      throw new RangeError(
        `Cannot open task store: max must be an integer from 1 to ${MAX_POOL}, got ${max}`,
      );
    }
    if (typeof notify !== "boolean") {
      throw new TypeError(
        `Cannot open task store: notify must be a boolean, got ${typeof notify}`,
      );
    }
    if (typeof readonly !== "boolean") {
      throw new TypeError(
        `Cannot open task store: readonly must be a boolean, got ${typeof readonly}`,
      );
    }
    const sql = await connect(url, max, schema, readonly);
    try {
      const queries = postgresQueries(quoted);
      if (readonly) {
        await inspect(sql, schema, queries);
        return new PostgresTaskStore(sql, schema, notify, 0, true);
      }
      const applied = await migrate(sql, schema, queries);
      return new PostgresTaskStore(sql, schema, notify, applied, false);
    } catch (error) {
      await sql.end({ timeout: 0 });
      throw error;
    }
  }

  /**
   * Drops a store's schema with every task in it. Irreversible: for tests
   * and for removing Sluice from a database. Close the stores using it
   * first.
   *
   * @param url A `postgres://` or `postgresql://` URL.
   * @param options The schema.
   * @returns A promise that settles once the schema is gone (or was absent).
   * @throws {TypeError} When the URL or schema has the wrong type.
   * @throws {RangeError} When the URL scheme or schema name is invalid.
   * @throws {Error} When the server cannot be reached.
   *
   * @example Refusing an invalid schema name
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * await assert.rejects(
   *   PostgresTaskStore.drop("postgres://localhost/db", { schema: "x; DROP" }),
   *   RangeError,
   * );
   * ```
   */
  static async drop(
    url: string,
    options: PostgresDropOptions = {},
  ): Promise<void> {
    checkUrl(url);
    const schema = options.schema ?? "sluice";
    const quoted = validateSchemaName(schema);
    const sql = await connect(url, 1, schema);
    try {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${quoted} CASCADE`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  }

  /** @throws {Error} When closed, or when a write is attempted read-only. */
  #check(action: string, write = false): Sql {
    if (this.#closed) {
      throw new Error(`Cannot ${action}: task store is closed`);
    }
    if (write && this.readonly) {
      throw new Error(`Cannot ${action}: task store is read-only`);
    }
    return this.#sql;
  }

  /**
   * Applies one batch in one transaction, in order: renewals, starts,
   * progress, checkpoints,
   * settles, releases, recovery of expired leases (when `recover` is set),
   * inserts, claims of due tasks. Either all of it is applied or none: a
   * dropped connection rejects the commit and applies nothing, and a
   * deadlock or serialization failure is retried a few times.
   *
   * @param batch The work to apply.
   * @returns What was renewed, started, settled, released, recovered,
   *   inserted and claimed.
   * @throws {TypeError} When a payload or result is not plain JSON data or
   *   cannot be stored as `jsonb`, or an id, type or key holds U+0000 or a
   *   lone surrogate; nothing is applied.
   * @throws {RangeError} When a batch field is out of range.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails (the error from the client, with its SQLSTATE `code`).
   *
   * @example Claiming due work
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     const { claimed } = await store.commit({
   *       settles: [],
   *       inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *       claimDue: 5,
   *       leaseMs: 1000,
   *       now: 10,
   *     });
   *     assert.deepEqual(claimed.map((t) => [t.id, t.attempts, t.leaseUntil]), [["a", 0, 1010]]);
   *     // Hand it back: due again at once, with a new version.
   *     const { id, version } = claimed[0]!;
   *     const { released, claimed: again } = await store.commit({
   *       settles: [],
   *       releases: [{ id, version }],
   *       inserts: [],
   *       claimDue: 5,
   *       leaseMs: 1000,
   *       now: 20,
   *     });
   *     assert.deepEqual(released, [true]);
   *     assert.deepEqual(again.map((t) => [t.id, t.version]), [["a", version + 2]]);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  commit(batch: CommitBatch): Promise<CommitResult> {
    try {
      return this.#commit(this.#check("commit", true), batch, false);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Applies `batch` on `sql`: as one implicit transaction of its own, or,
   * `inTransaction`, inside the explicit transaction open on `sql` (a
   * reserved connection), where a deadlock cannot be re-sent (the whole
   * transaction is aborted) and the count deltas are not folded.
   */
  async #commit(
    sql: Sql,
    batch: CommitBatch,
    inTransaction: boolean,
  ): Promise<CommitResult> {
    validateBatch(batch);
    const now = Math.floor(batch.now);
    const leaseUntil = Math.ceil(batch.now + batch.leaseMs);
    checkTime(now, "commit", "now");
    checkTime(leaseUntil, "commit", "now + leaseMs");
    const q = this.#queries;
    // Everything is encoded before the round trip: a bad value refuses the
    // batch without touching the database. Each kind of work is one
    // statement with its rows as one JSON array, so a commit is a fixed
    // number of statements whatever its size.
    const statements: string[] = [];
    const at = (text: string): number => statements.push(text) - 1;

    const renewals = batch.renewals ?? [];
    const renewAt = renewals.length === 0 ? -1 : at(
      inline(q.renew, [
        JSON.stringify(renewals.map((r) => ({ id: r.id, v: r.version }))),
        leaseUntil,
      ]),
    );

    // Duplicate starts of one claim are folded into one row with a count:
    // an UPDATE … FROM changes each row once.
    const starts = batch.starts ?? [];
    const startCounts = new Map<string, { id: string; v: number; n: number }>();
    for (const { id, version } of starts) {
      const pair = pairKey(id, version);
      const row = startCounts.get(pair);
      if (row === undefined) startCounts.set(pair, { id, v: version, n: 1 });
      else row.n++;
    }
    const startAt = starts.length === 0 ? -1 : at(
      inline(q.start, [JSON.stringify([...startCounts.values()]), now]),
    );

    const progress = batch.progress ?? [];
    const progressAt = progress.length === 0
      ? -1
      : at(inline(q.progress, [stateRows(progress, "progress")]));
    const checkpoints = batch.checkpoints ?? [];
    const checkpointAt = checkpoints.length === 0
      ? -1
      : at(inline(q.checkpoint, [stateRows(checkpoints, "checkpoint")]));

    const settleRows: string[] = [];
    // Only the first settle of an (id, version) pair can apply: it moves
    // the task out of `running`. Later copies are refused without SQL.
    const firstSettle = new Map<string, number>();
    let hasRetry = false;
    batch.settles.forEach((settle, i) => {
      const { id, version, outcome } = settle;
      const pair = pairKey(id, version);
      if (firstSettle.has(pair)) return;
      firstSettle.set(pair, i);
      let fields: string;
      switch (outcome.kind) {
        case "succeeded": {
          const result = jsonText(
            outcome.result,
            "settle task",
            id,
            "result",
            true,
          );
          if (outcome.outputKey !== null) {
            checkText(outcome.outputKey, `settle task ${id}`, "outputKey");
          }
          fields = `"r":${result ?? "null"},"ok":${
            JSON.stringify(outcome.outputKey)
          }`;
          break;
        }
        case "retry": {
          hasRetry = true;
          const runAt = Math.ceil(outcome.runAt);
          checkTime(runAt, `settle task ${id}`, "runAt");
          fields = `"ra":${runAt},"e":${
            JSON.stringify(storableMessage(outcome.error))
          },"ec":${JSON.stringify(outcome.errorClass)}`;
          break;
        }
        case "dead":
          fields = `"e":${
            JSON.stringify(storableMessage(outcome.error))
          },"ec":${JSON.stringify(outcome.errorClass)}`;
          break;
      }
      let startedAt: number | null = null;
      if (settle.startedAt !== undefined) {
        startedAt = Math.floor(settle.startedAt);
        checkTime(startedAt, `settle task ${id}`, "startedAt");
      }
      settleRows.push(
        `{"id":${JSON.stringify(id)},"v":${version},"k":"${outcome.kind}","c":${
          settle.charge === true
        },"sa":${startedAt},"q":${
          JSON.stringify(settle.queue ?? null)
        },${fields}}`,
      );
    });
    const settleAt = settleRows.length === 0 ? -1 : at(
      inline(q.settle, [
        `[${settleRows.join(",")}]`,
        now,
        batch.settles.length,
      ]),
    );

    // Like settles, only the first release of a pair can apply.
    const releases = batch.releases ?? [];
    const firstRelease = new Map<string, number>();
    const releaseRows: {
      id: string;
      v: number;
      rf: boolean;
      q: string | null;
    }[] = [];
    releases.forEach(({ id, version, refund, queue }, i) => {
      const pair = pairKey(id, version);
      if (firstRelease.has(pair)) return;
      firstRelease.set(pair, i);
      releaseRows.push({
        id,
        v: version,
        rf: refund === true,
        q: queue ?? null,
      });
    });
    const releaseAt = releaseRows.length === 0 ? -1 : at(
      inline(q.release, [JSON.stringify(releaseRows), now]),
    );

    const recoverAt = batch.recover !== true ? -1 : at(
      inline(q.recoverExpired, [
        now,
        LEASE_EXPIRED_MESSAGE,
        this.#notify,
        this.schema,
      ]),
    );

    const insertRows: string[] = [];
    const keys = new Set<string>();
    batch.inserts.forEach((task, i) => {
      const payload = jsonText(
        task.payload,
        "store task",
        task.id,
        "payload",
        false,
      );
      const runAt = Math.ceil(task.runAt);
      checkTime(runAt, `store task ${task.id}`, "runAt");
      const until = dedupeUntil(task);
      if (until !== null) {
        checkTime(until, `store task ${task.id}`, "dedupeUntil");
      }
      if (task.idempotencyKey !== null) keys.add(task.idempotencyKey);
      const claim = task.claim === true;
      insertRows.push(
        `{"o":${i},"id":${JSON.stringify(task.id)},"ty":${
          JSON.stringify(task.type)
        },"key":${
          JSON.stringify(task.idempotencyKey)
        },"p":${payload},"c":${claim},"ma":${task.maxAttempts},"ra":${runAt},"lu":${
          claim ? leaseUntil : "null"
        },"du":${until},"q":${
          JSON.stringify(task.queue ?? DEFAULT_QUEUE)
        },"pr":${task.priority ?? 0}}`,
      );
    });
    // Keys whose holder's window has passed are released first, in their
    // own statement of the same transaction: the insert then takes them.
    if (keys.size > 0) {
      at(inline(q.releaseKeys, [JSON.stringify([...keys]), now]));
    }
    const insertAt = insertRows.length === 0
      ? -1
      : at(inline(q.insert, [`[${insertRows.join(",")}]`, now]));
    const claimDueAt = batch.claimDue === 0 ? -1 : at(inline(q.claimDue, [
      now,
      leaseUntil,
      batch.claimDue,
      JSON.stringify(
        (batch.claimQueues ?? [{ queue: DEFAULT_QUEUE }]).map((c) => ({
          q: c.queue,
          n: Math.min(batch.claimDue, c.limit ?? Infinity),
        })),
      ),
      batch.claimTypes === undefined ? null : JSON.stringify(batch.claimTypes),
    ]));
    // A hint, sent with the transaction and delivered on commit; sent for
    // any batch that could have added due work (retries, releases, new
    // unclaimed tasks), even if its inserts turn out to be duplicates.
    // Recovery sends its own when it requeues anything.
    if (
      this.#notify &&
      (hasRetry || releaseRows.length > 0 ||
        batch.inserts.some((task) => task.claim !== true))
    ) {
      at(inline(q.notify, [this.schema]));
    }
    const result: CommitResult = {
      renewed: [],
      started: [],
      progressed: [],
      checkpointed: [],
      settled: [],
      released: [],
      recovered: 0,
      inserted: [],
      claimed: [],
    };
    if (statements.length === 0) return result;
    // The statements that can change a status reported their moves; one
    // more statement appends their net change to the count deltas.
    if (
      settleAt >= 0 || releaseAt >= 0 || recoverAt >= 0 || insertAt >= 0 ||
      claimDueAt >= 0
    ) {
      at(q.count);
    }
    if (!inTransaction && ++this.#commits % FOLD_EVERY === 0) at(q.fold);
    const results = await runStatements(
      sql,
      statements,
      inTransaction ? 1 : COMMIT_TRIES,
    );

    const renewedPairs = returnedPairs(results, renewAt);
    result.renewed = renewals.map((r) =>
      renewedPairs.has(pairKey(r.id, r.version))
    );
    const startedPairs = returnedPairs(results, startAt);
    result.started = starts.map((s) =>
      startedPairs.has(pairKey(s.id, s.version))
    );
    const progressedPairs = returnedPairs(results, progressAt);
    result.progressed = progress.map((w) =>
      progressedPairs.has(pairKey(w.id, w.version))
    );
    const checkpointedPairs = returnedPairs(results, checkpointAt);
    result.checkpointed = checkpoints.map((w) =>
      checkpointedPairs.has(pairKey(w.id, w.version))
    );
    result.settled = batch.settles.map(() => false);
    for (const pair of returnedPairs(results, settleAt)) {
      const i = firstSettle.get(pair);
      if (i !== undefined) result.settled[i] = true;
    }
    result.released = releases.map(() => false);
    for (const pair of returnedPairs(results, releaseAt)) {
      const i = firstRelease.get(pair);
      if (i !== undefined) result.released[i] = true;
    }
    if (recoverAt >= 0) {
      result.recovered = (results[recoverAt]![0]?.["n"] as number) ?? 0;
    }

    if (insertAt >= 0) {
      const ids = new Map<string, string>();
      const existing = new Map<string, TaskRecord>();
      for (const row of results[insertAt]!) {
        if (row["row"] === null) ids.set(row["id"], row["status"]);
        else {
          const record = toRecord(row["row"]);
          existing.set(record.idempotencyKey!, record);
        }
      }
      // The first insert of each key in this batch that went in; a later
      // one with the same key resolves to it.
      const ours = new Map<string, TaskRecord>();
      const missing: string[] = [];
      for (const task of batch.inserts) {
        const key = task.idempotencyKey;
        if (ids.has(task.id)) {
          const record = newRecord(
            {
              ...task,
              runAt: Math.ceil(task.runAt),
              dedupeUntil: dedupeUntil(task),
            },
            now,
            leaseUntil,
            ids.get(task.id) === "running",
          );
          if (key !== null && !ours.has(key)) ours.set(key, record);
          result.inserted.push({ inserted: true, record });
          continue;
        }
        const found = key === null
          ? undefined
          : ours.get(key) ?? existing.get(key);
        if (found === undefined) missing.push(key!);
        // Filled in below when the key's row was committed by another
        // transaction after this statement's snapshot was taken.
        result.inserted.push({ inserted: false, record: found! });
      }
      if (missing.length > 0) {
        for (const row of await run(sql, q.byKeys, [JSON.stringify(missing)])) {
          existing.set(row["idempotency_key"], toRecord(row));
        }
        batch.inserts.forEach((task, i) => {
          const outcome = result.inserted[i]!;
          if (outcome.record !== undefined) return;
          const found = existing.get(task.idempotencyKey!);
          if (found === undefined) {
            throw new Error(
              `Cannot store task ${task.id}: it was not inserted and no task has its idempotency key`,
            );
          }
          outcome.record = found;
        });
      }
    }

    if (claimDueAt >= 0) {
      // RETURNING yields rows in update order, not claim order.
      const rows = [...results[claimDueAt]!].sort((a, b) =>
        b["priority"] - a["priority"] || a["run_at"] - b["run_at"] ||
        a["seq"] - b["seq"]
      );
      for (const row of rows) result.claimed.push(toRecord(row));
    }
    return result;
  }

  /**
   * Inserts every task of `batches` in one transaction on a connection of
   * its own, reading one batch at a time: all of them, or none when the
   * source throws, a task cannot be stored or the server fails. Each
   * batch is the insert statement of a commit, sent inside the open
   * transaction; other processes see none of the tasks until the end.
   * Unlike a commit, this sends BEGIN and COMMIT, as a long transaction
   * must; a deadlock is not re-sent (the whole transaction was aborted).
   *
   * @param batches The tasks, a batch at a time.
   * @param options The time the inserts are applied at, and where each
   *   batch's outcomes go.
   * @returns Once committed.
   * @throws {TypeError} When a payload is not plain JSON data; nothing is
   *   inserted.
   * @throws {RangeError} When a task asks to be inserted claimed.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails; nothing is inserted.
   *
   * @example Inserting two batches at once
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 };
   *     async function* batches() {
   *       yield [{ ...task, id: "a" }];
   *       yield [{ ...task, id: "b" }];
   *     }
   *     let n = 0;
   *     await store.insertAll(batches(), { now: 0, onInserted: (o) => n += o.length });
   *     assert.equal(n, 2);
   *     assert.equal((await store.status(0)).counts.queued, 2);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async insertAll(
    batches: AsyncIterable<readonly NewTask[]>,
    { now, onInserted }: InsertAllOptions,
  ): Promise<void> {
    const sql = this.#check("insert tasks", true);
    let conn: postgres.ReservedSql | undefined;
    let lost = false;
    try {
      for await (const tasks of batches) {
        const batch = insertOnlyBatch(tasks, now);
        if (conn === undefined) {
          conn = await sql.reserve();
          await conn.unsafe("BEGIN").simple();
        }
        onInserted((await this.#commit(conn, batch, true)).inserted);
      }
      if (conn !== undefined) await conn.unsafe("COMMIT").simple();
    } catch (error) {
      // A connection that is gone took its transaction with it: a query
      // sent on it would wait forever, and the client takes it back into
      // its pool of closed connections (to reconnect) by itself; released
      // as well, it would be handed out again without a socket.
      lost = connectionLost(error);
      if (conn !== undefined && !lost) {
        await conn.unsafe("ROLLBACK").simple().catch(() => {});
      }
      throw error;
    } finally {
      if (!lost) conn?.release();
    }
  }

  /**
   * Inserts tasks through the caller's own transaction `tx`, so they
   * exist if and only if it commits: the statements of a commit's inserts
   * (key windows released, the insert in key order, the wake-up `NOTIFY`,
   * the count deltas), sent inside `tx`. Other processes see neither the
   * tasks nor the count change until the transaction commits, and the
   * `NOTIFY` is delivered only then; a rollback leaves no trace. A task
   * whose key is already held (committed, or inserted earlier in this
   * transaction) is answered by that task, as in a commit.
   *
   * Everything is checked before anything is sent: a bad task throws and
   * `tx` stays usable. A server error (a deadlock, or a serialization
   * failure of a `REPEATABLE READ` or `SERIALIZABLE` transaction meeting a
   * key a concurrent one committed) aborts the caller's transaction, which
   * the caller retries as a whole. The insert waits for a concurrent
   * transaction holding the same new key to end.
   *
   * @param tx The caller's open transaction, on this store's database.
   * @param tasks The tasks; inserted unclaimed.
   * @param now The time the inserts are applied at (epoch ms).
   * @returns The outcomes and the transaction's id.
   * @throws {TypeError} When `tx` is not a transaction of the `postgres`
   *   client, or a task cannot be stored (see `commit`); nothing is sent.
   * @throws {RangeError} When a task asks to be inserted claimed, or a
   *   field is out of range; nothing is sent.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails (the caller's transaction is then aborted).
   *
   * @example Inserting with an order, committed together
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import postgres from "npm:postgres@3.4.9";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   const sql = postgres(url, { max: 1, onnotice: () => {} });
   *   try {
   *     const task = { id: "t1", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 };
   *     const { inserted } = await sql.begin(async (tx) => {
   *       await tx`SELECT 1`; // the caller's own writes go here
   *       const done = await store.insertWith(tx, [task], 0);
   *       assert.equal(await store.get("t1"), undefined); // not committed yet
   *       return done;
   *     });
   *     assert.equal(inserted[0]?.inserted, true);
   *     assert.equal((await store.get("t1"))?.status, "queued");
   *     assert.equal((await store.status(0)).counts.queued, 1);
   *   } finally {
   *     await sql.end();
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async insertWith(
    tx: PostgresTransaction,
    tasks: readonly NewTask[],
    now: number,
  ): Promise<TransactionInsert> {
    this.#check("insert tasks in a transaction", true);
    checkTransaction(tx);
    const batch = insertOnlyBatch(tasks, now);
    // The client's TransactionSql has every method the store calls.
    const sql = tx as unknown as Sql;
    const { inserted } = await this.#commit(sql, batch, true);
    const [row] = await run(sql, TRANSACTION_ID);
    return { inserted, transactionId: String(row?.["xid"]) };
  }

  /**
   * How each transaction ended, in one read: for a caller waiting on a
   * transaction that {@linkcode PostgresTaskStore.insertWith} wrote into.
   *
   * @param ids Transaction ids, as `insertWith` returned them.
   * @returns One state per id, in order.
   * @throws {TypeError} When `ids` is not an array of strings.
   * @throws {RangeError} When an id is not a transaction id.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example A transaction rolled back
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import postgres from "npm:postgres@3.4.9";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   const sql = postgres(url, { max: 1, onnotice: () => {} });
   *   try {
   *     const task = { id: "t1", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 };
   *     let xid = "";
   *     await assert.rejects(sql.begin(async (tx) => {
   *       xid = (await store.insertWith(tx, [task], 0)).transactionId;
   *       assert.deepEqual(await store.transactionStates([xid]), ["in progress"]);
   *       throw new Error("changed my mind");
   *     }), /changed my mind/);
   *     assert.deepEqual(await store.transactionStates([xid]), ["aborted"]);
   *     assert.equal(await store.get("t1"), undefined);
   *   } finally {
   *     await sql.end();
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async transactionStates(
    ids: readonly string[],
  ): Promise<TransactionState[]> {
    const sql = this.#check("read transaction states");
    if (!Array.isArray(ids)) {
      throw new TypeError(
        `Cannot read transaction states: ids must be an array, got ${typeof ids}`,
      );
    }
    for (const id of ids) {
      if (typeof id !== "string") {
        throw new TypeError(
          `Cannot read transaction states: an id must be a string, got ${typeof id}`,
        );
      }
      if (!TRANSACTION_ID_TEXT.test(id)) {
        throw new RangeError(
          `Cannot read transaction states: ${
            JSON.stringify(id)
          } is not a transaction id`,
        );
      }
    }
    if (ids.length === 0) return [];
    const rows = await run(sql, TRANSACTION_STATES, [JSON.stringify(ids)]);
    return rows.map((row) => (row["state"] ?? "unknown") as TransactionState);
  }

  /**
   * Returns running tasks whose lease ended before `now` to `queued`, or to
   * `dead` when their charged attempts have reached `maxAttempts` (a claim
   * that never started charged nothing). Each gets a new version, so a
   * late settle from the old claim is refused. Rows a concurrent
   * transaction holds are skipped (their owner is settling them).
   *
   * @param now The current time (epoch ms).
   * @returns How many tasks were recovered (requeued or dead-lettered).
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Recovering after a crash
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     await store.commit({
   *       settles: [],
   *       inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: null, maxAttempts: 3, runAt: 0, claim: true }],
   *       claimDue: 0,
   *       leaseMs: 100,
   *       now: 0,
   *     });
   *     assert.equal(await store.recoverExpired(500), 1);
   *     assert.equal((await store.get("a"))?.status, "queued");
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async recoverExpired(now: number): Promise<number> {
    const sql = this.#check("recover expired leases", true);
    const at = Math.floor(now);
    checkTime(at, "recover expired leases", "now");
    const q = this.#queries;
    const [rows] = await runStatements(sql, [
      inline(q.recoverExpired, [
        at,
        LEASE_EXPIRED_MESSAGE,
        this.#notify,
        this.schema,
      ]),
      q.count,
    ]);
    return (rows![0]?.["n"] as number | undefined) ?? 0;
  }

  /**
   * Reads one task by id.
   *
   * @param id The task id.
   * @returns The task, or `undefined`.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Missing task
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   assert.equal(await store.get("nope"), undefined);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async get(id: string): Promise<TaskRecord | undefined> {
    const sql = this.#check("get task");
    checkText(id, "get task", "id");
    const [row] = await run(sql, this.#queries.byId, [id]);
    return row === undefined ? undefined : toRecord(row);
  }

  /**
   * Reads one task by idempotency key.
   *
   * @param key The idempotency key.
   * @returns The task, or `undefined`.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Missing key
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   assert.equal(await store.getByKey("nope"), undefined);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async getByKey(key: string): Promise<TaskRecord | undefined> {
    const sql = this.#check("get task");
    checkText(key, "get task", "key");
    const [row] = await run(sql, this.#queries.byKey, [key]);
    return row === undefined ? undefined : toRecord(row);
  }

  /**
   * Lists tasks, oldest `createdAt` first (insertion order within one
   * commit).
   *
   * @param options Status filter, limit and offset.
   * @returns The tasks.
   * @throws {RangeError} When `limit` or `offset` is not a non-negative integer.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Listing queued tasks
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   assert.deepEqual(await store.list({ status: "queued", limit: 10 }), []);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async list(options: ListOptions = {}): Promise<TaskRecord[]> {
    const sql = this.#check("list tasks");
    const { status, queue, limit, offset } = validateList(options);
    const rows = queue !== undefined
      ? await run(sql, this.#queries.listByQueue, [
        queue,
        status ?? null,
        limit ?? null,
        offset,
      ])
      : status === undefined
      ? await run(sql, this.#queries.listAll, [limit ?? null, offset])
      : await run(sql, this.#queries.listByStatus, [
        status,
        limit ?? null,
        offset,
      ]);
    return rows.map(toRecord);
  }

  /**
   * Moves dead tasks back to `queued`, due at `now`, with attempts reset to
   * 0, and announces them with `NOTIFY`. Ids that are unknown or not dead
   * are skipped.
   *
   * @param ids The ids, or `"all"` for every dead task.
   * @param now The current time (epoch ms).
   * @returns How many tasks were requeued.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Requeueing nothing
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   assert.equal(await store.requeue("all", Date.now()), 0);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async requeue(ids: string[] | "all", now: number): Promise<number> {
    const sql = this.#check("requeue tasks", true);
    const at = Math.floor(now);
    checkTime(at, "requeue tasks", "now");
    if (ids !== "all") {
      for (const id of ids) checkText(id, "requeue tasks", "id");
      if (ids.length === 0) return 0;
    }
    const q = this.#queries;
    const [rows] = await runStatements(sql, [
      ids === "all"
        ? inline(q.requeueAll, [at, this.#notify, this.schema])
        : inline(q.requeueIds, [
          JSON.stringify(ids),
          at,
          this.#notify,
          this.schema,
        ]),
      q.count,
    ]);
    return (rows![0]?.["n"] as number | undefined) ?? 0;
  }

  /**
   * Cancels tasks in one transaction: a queued, failed or running task
   * becomes `dead` with the error "Cannot run task: cancelled" and a new
   * version, so a running attempt's renewals and settle are refused.
   *
   * @param ids The task ids.
   * @param now The current time (epoch ms).
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed or read-only, or the server fails.
   *
   * @example Cancelling an unknown task
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   const [outcome] = await store.cancel(["x"], Date.now());
   *   assert.equal(outcome?.outcome, "missing");
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async cancel(ids: readonly string[], now: number): Promise<CancelOutcome[]> {
    const sql = this.#check("cancel tasks", true);
    const at = Math.floor(now);
    checkTime(at, "cancel tasks", "now");
    for (const id of ids) checkText(id, "cancel tasks", "id");
    if (ids.length === 0) return [];
    const q = this.#queries;
    const [rows] = await runStatements(sql, [
      inline(q.cancel, [JSON.stringify(ids), at, CANCELLED_MESSAGE]),
      q.count,
    ], COMMIT_TRIES);
    const was = new Map<string, TaskStatus>();
    for (const row of rows!) was.set(row["id"], row["status"]);
    return ids.map((id): CancelOutcome => {
      const status = was.get(id);
      if (status === undefined) return { id, outcome: "missing", was: null };
      return {
        id,
        outcome: status === "succeeded" || status === "dead"
          ? "finished"
          : "cancelled",
        was: status,
      };
    });
  }

  /**
   * Deletes tasks that are not running, in one transaction; their
   * idempotency keys are free.
   *
   * @param ids The task ids.
   * @returns One outcome per id, in order.
   * @throws {Error} When the store is closed or read-only, or the server fails.
   *
   * @example Removing an unknown task
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   assert.deepEqual(await store.remove(["x"]), [{ id: "x", outcome: "missing" }]);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async remove(ids: readonly string[]): Promise<RemoveOutcome[]> {
    const sql = this.#check("remove tasks", true);
    for (const id of ids) checkText(id, "remove tasks", "id");
    if (ids.length === 0) return [];
    const q = this.#queries;
    const [rows] = await runStatements(sql, [
      inline(q.remove, [JSON.stringify(ids)]),
      q.count,
    ], COMMIT_TRIES);
    const was = new Map<string, TaskStatus>();
    for (const row of rows!) was.set(row["id"], row["status"]);
    return ids.map((id): RemoveOutcome => {
      const status = was.get(id);
      return {
        id,
        outcome: status === undefined
          ? "missing"
          : status === "running"
          ? "running"
          : "removed",
      };
    });
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
   * @throws {Error} When the store is closed or read-only, or the server fails.
   *
   * @example Pausing a queue
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   await store.setPaused("emails", true, 5);
   *   assert.deepEqual(await store.queueStates(), [{ name: "emails", paused: true, updatedAt: 5 }]);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    const sql = this.#check(paused ? "pause queue" : "resume queue", true);
    checkQueueName(queue, "queue");
    const at = Math.floor(now);
    checkTime(at, paused ? "pause queue" : "resume queue", "now");
    await run(sql, this.#queries.setPaused, [queue, paused, at]);
    // A resumed queue's tasks are due at once.
    if (!paused && this.#notify) {
      await run(sql, this.#queries.notify, [this.schema]);
    }
  }

  /**
   * The queues paused or resumed at least once, by name.
   *
   * @returns Their states.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example No queue state yet
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   assert.deepEqual(await store.queueStates(), []);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async queueStates(): Promise<QueueState[]> {
    const sql = this.#check("read queue states");
    const rows = await run(sql, this.#queries.queueStates, []);
    return rows.map((row) => ({
      name: row["name"],
      paused: row["paused"],
      updatedAt: row["updated_at"],
    }));
  }

  /**
   * Reads counts by status and the totals of tasks ever inserted,
   * succeeded and dead-lettered (six rows plus the deltas transactions
   * appended since the last fold), the age of the oldest due claimable
   * task (queued, or failed and due: the due index's first entry), the
   * failed tasks due, and how many running tasks have a recorded start
   * (through an index on running rows), in one statement (one snapshot).
   * No read grows with the finished rows.
   *
   * @param now The current time (epoch ms).
   * @returns The snapshot.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example An empty store
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   const status = await store.status(Date.now());
   *   assert.equal(status.counts.queued, 0);
   *   assert.equal(status.started, 0);
   *   assert.equal(status.oldestQueuedAgeMs, null);
   *   assert.equal(status.dueFailed, 0);
   *   assert.deepEqual(status.totals, { submitted: 0, succeeded: 0, dead: 0 });
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   *
   * @example Telling started tasks from claimed ones
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 3, runAt: 0 };
   *     const { claimed } = await store.commit({
   *       settles: [],
   *       inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *       claimDue: 2,
   *       leaseMs: 100,
   *       now: 0,
   *     });
   *     const { id, version } = claimed.find((t) => t.id === "a")!;
   *     await store.commit({ starts: [{ id, version }], settles: [], inserts: [], claimDue: 0, leaseMs: 100, now: 7 });
   *     const { counts, started } = await store.status(8);
   *     assert.deepEqual([counts.running, started], [2, 1]);
   *     assert.equal((await store.get("a"))?.startedAt, 7);
   *     assert.equal((await store.get("b"))?.startedAt, null);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async status(now: number): Promise<StoreStatus> {
    const sql = this.#check("read status");
    const at = Math.floor(now);
    checkTime(at, "read status", "now");
    const [row] = await run(sql, this.#queries.status, [at]);
    const { counts, totals, queues } = keptCounts(
      (row?.["counts"] ?? []) as [string, string, number, number][],
    );
    const oldest = row?.["oldest"] as number | null | undefined;
    return {
      counts,
      oldestQueuedAgeMs: oldest === null || oldest === undefined
        ? null
        : at - oldest,
      dueFailed: (row?.["due_failed"] as number | undefined) ?? 0,
      started: (row?.["started"] as number | undefined) ?? 0,
      totals,
      queues,
    };
  }

  /**
   * Deletes at most `limit` finished tasks that `policy` no longer keeps
   * at `now`, oldest `updatedAt` first (then insertion order), in one
   * transaction of one statement: each queue's candidates of each status
   * are read from the status's `(queue, updated_at, seq)` index, bounded
   * by `limit`; rows another transaction holds are skipped. A task is
   * pruned once it finished before `now - maxAgeMs`, or is not among the
   * newest `maxCount` of its status in its queue, by its queue's rules. Only one process prunes a schema at a time:
   * the statement takes `pg_try_advisory_xact_lock`, and when another
   * prune holds it the result is `skipped` and nothing is deleted. The
   * same transaction folds the count deltas into the count rows.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @param limit The most tasks to delete in this call.
   * @returns How many tasks of each status were deleted, or `skipped`.
   * @throws {TypeError} When the policy, a rule or `limit` has the wrong type.
   * @throws {RangeError} When a limit is negative or not an integer where
   *   one is needed, `now` is out of range, or the policy names another
   *   status.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails.
   *
   * @example Keeping the newest succeeded task
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     const task = { type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0, claim: true };
   *     const { inserted } = await store.commit({
   *       settles: [],
   *       inserts: [{ ...task, id: "a" }, { ...task, id: "b" }],
   *       claimDue: 0,
   *       leaseMs: 100,
   *       now: 0,
   *     });
   *     await store.commit({
   *       settles: inserted.map(({ record: { id, version } }) => ({
   *         id,
   *         version,
   *         outcome: { kind: "succeeded" as const, result: id, outputKey: null },
   *       })),
   *       inserts: [],
   *       claimDue: 0,
   *       leaseMs: 100,
   *       now: 1,
   *     });
   *     const policy = { succeeded: { maxCount: 1 } };
   *     assert.deepEqual(await store.prune(policy, 2, 100), { succeeded: 1, dead: 0, skipped: false });
   *     assert.equal(await store.get("a"), undefined);
   *     assert.equal((await store.status(2)).totals.succeeded, 2);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async prune(
    policy: RetentionPolicy,
    now: number,
    limit: number,
  ): Promise<PruneResult> {
    const sql = this.#check("prune tasks", true);
    const rules = checkRetention(policy, now, "prune tasks");
    checkPruneLimit(limit);
    checkTime(Math.floor(now), "prune tasks", "now");
    const q = this.#queries;
    const [pruned] = await runStatements(sql, [
      inline(q.prune, [limit, ...policyParams(rules)]),
      q.count,
      q.fold,
    ]);
    const row = pruned![0];
    return {
      succeeded: (row?.["succeeded"] as number | undefined) ?? 0,
      dead: (row?.["dead"] as number | undefined) ?? 0,
      skipped: row?.["locked"] !== true,
    };
  }

  /**
   * Recomputes the counts by status from the rows (O(rows)), in one
   * transaction that first takes the fold lock (waiting for a fold or
   * another recount to end): the rows are counted, and the pending deltas
   * deleted, in one snapshot, so deltas committed later are folded on top
   * and stay exact while other processes keep committing. The totals stay
   * (taking the deleted deltas' share). For operators: the counts are
   * kept by Sluice's own statements, so task statuses changed by other SQL
   * (by hand, or by a Sluice process older than schema version 4 still
   * writing during an upgrade) leave them off until a recount.
   *
   * @returns A promise that settles once the counts are recomputed.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails (the counts are then unchanged).
   *
   * @example Recounting a store whose counts are exact changes nothing
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     await store.commit({
   *       settles: [],
   *       inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *       claimDue: 0,
   *       leaseMs: 100,
   *       now: 0,
   *     });
   *     const before = await store.status(0);
   *     await store.recount();
   *     assert.deepEqual(await store.status(0), before);
   *     assert.deepEqual([before.counts.queued, before.totals.submitted], [1, 1]);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  async recount(): Promise<void> {
    const sql = this.#check("recount tasks", true);
    const q = this.#queries;
    await runStatements(sql, [q.foldLock, q.recount]);
  }

  /**
   * Counts what {@linkcode PostgresTaskStore.prune} would delete if called
   * until it deletes nothing, at the same `now`, changing nothing: the
   * rows beyond the count kept (from the kept counts) or finished before
   * the cutoff (counted in the status's index), whichever is more. Works
   * read-only.
   *
   * @param policy What to keep of succeeded and dead tasks.
   * @param now The time the policy is applied at (epoch ms).
   * @returns How many tasks of each status would go; `skipped` is `false`.
   * @throws {TypeError} When the policy or a rule has the wrong type.
   * @throws {RangeError} When a limit is out of range or `now` is.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example Counting before purging
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   const counted = await store.prunable({ dead: { maxAgeMs: 0 } }, Date.now());
   *   assert.deepEqual(counted, { succeeded: 0, dead: 0, skipped: false });
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async prunable(policy: RetentionPolicy, now: number): Promise<PruneResult> {
    const sql = this.#check("count prunable tasks");
    const rules = checkRetention(policy, now, "count prunable tasks");
    checkTime(Math.floor(now), "count prunable tasks", "now");
    const [row] = await run(sql, this.#queries.prunable, policyParams(rules));
    return {
      succeeded: (row?.["succeeded"] as number | undefined) ?? 0,
      dead: (row?.["dead"] as number | undefined) ?? 0,
      skipped: false,
    };
  }

  /**
   * How many settles were refused because their fencing token was stale,
   * since the schema was created, across every process using it.
   *
   * @returns The count.
   * @throws {Error} When the store is closed or the server fails.
   *
   * @example A fresh store
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   await using store = await PostgresTaskStore.open(url, { schema });
   *   assert.equal(await store.staleSettles(), 0);
   *   await store.close();
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  async staleSettles(): Promise<number> {
    const sql = this.#check("read counters");
    const [row] = await run(sql, this.#queries.staleSettles);
    return (row?.["value"] as number | undefined) ?? 0;
  }

  /**
   * Throws when `value` cannot be stored as a payload or result exactly as
   * it is: it must be plain JSON data (no `NaN`, BigInt, `Map`, `Date`,
   * class instance, function, array hole…) that `jsonb` can hold (no
   * U+0000, no lone surrogate). Needs no connection.
   *
   * @param value The payload or result.
   * @param what Which of the two it is.
   * @throws {TypeError} When it is not plain JSON data ("Cannot store task:
   *   <what> is not plain JSON data (<problem> at <path>)") or `jsonb`
   *   refuses it.
   *
   * @example Refusing what JSON or jsonb would change
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     store.checkValue({ sizes: [64, 128] }, "payload");
   *     assert.throws(() => store.checkValue({ at: [NaN] }, "payload"), {
   *       message: "Cannot store task: payload is not plain JSON data (NaN at payload.at[0])",
   *     });
   *     assert.throws(() => store.checkValue("nul\0", "result"), /jsonb/);
   *   } finally {
   *     await store.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  checkValue(value: unknown, what: "payload" | "result"): void {
    jsonText(value, "store task", undefined, what, what === "result");
  }

  /**
   * Subscribes to new work: `listener` is called when a commit (from any
   * process on this schema) adds claimable tasks, schedules a retry or
   * requeues dead ones. It is also called each time the subscription is
   * (re)established, since notifications sent while disconnected are lost;
   * a caller can treat every call as "look for work now". Calls are hints,
   * not a delivery guarantee: keep polling as the fallback. Exceptions a
   * listener throws are ignored. With `notify: false` the listener is
   * never called.
   *
   * @param listener Called with no arguments.
   * @returns A function that unsubscribes (idempotent).
   * @throws {TypeError} When `listener` is not a function.
   * @throws {Error} When the store is closed.
   *
   * @example Waking on another process's insert
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const consumer = await PostgresTaskStore.open(url, { schema });
   *   const producer = await PostgresTaskStore.open(url, { schema });
   *   try {
   *     let calls = 0;
   *     let wake!: () => void;
   *     let woken = new Promise<void>((resolve) => (wake = resolve));
   *     const stop = consumer.onNotify(() => {
   *       calls++;
   *       wake();
   *     });
   *     await woken; // subscribed
   *     woken = new Promise<void>((resolve) => (wake = resolve));
   *     await producer.commit({
   *       settles: [],
   *       inserts: [{ id: "a", type: "t", idempotencyKey: null, payload: 1, maxAttempts: 1, runAt: 0 }],
   *       claimDue: 0,
   *       leaseMs: 1000,
   *       now: 0,
   *     });
   *     await woken;
   *     assert.equal(calls, 2);
   *     stop();
   *   } finally {
   *     await consumer.close();
   *     await producer.close();
   *     await PostgresTaskStore.drop(url, { schema });
   *   }
   * }
   * ```
   */
  onNotify(listener: () => void): () => void {
    const sql = this.#check("listen for tasks");
    if (typeof listener !== "function") {
      throw new TypeError(
        `Cannot listen for tasks: listener must be a function, got ${typeof listener}`,
      );
    }
    const subscription: Subscription = { listener };
    this.#subscriptions.add(subscription);
    if (this.#notify && this.#listen === null) {
      const emit = (): void => {
        for (const { listener } of [...this.#subscriptions]) {
          try {
            listener();
          } catch {
            // A listener's failure must not starve the others.
          }
        }
      };
      this.#listen = Promise.resolve(
        sql.listen(NOTIFY_CHANNEL, (payload) => {
          if (payload === this.schema) emit();
        }, emit),
      ).catch(() => null);
    }
    return () => {
      if (!this.#subscriptions.delete(subscription)) return;
      if (this.#subscriptions.size > 0 || this.#listen === null) return;
      const listening = this.#listen;
      this.#listen = null;
      if (this.#closed) return;
      const done = listening
        .then((meta) => meta?.unlisten())
        .catch(() => {})
        .finally(() => this.#unlistening.delete(done));
      this.#unlistening.add(done);
    };
  }

  /**
   * Stores a schedule, replacing the one of the same name (keeping its
   * `createdAt` and `lastTick`).
   *
   * @param schedule The schedule.
   * @param now The time of the write (epoch ms).
   * @returns The stored schedule.
   * @throws {TypeError} When the task cannot be stored as `jsonb`.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails.
   */
  async putSchedule(
    schedule: NewSchedule,
    now: number,
  ): Promise<ScheduleRecord> {
    const sql = this.#check("store schedule", true);
    const task = jsonText(
      schedule.task,
      "store schedule",
      schedule.name,
      "task",
      false,
    );
    const at = Math.floor(now);
    checkTime(at, "store schedule", "now");
    const [row] = await run(sql, this.#schedules.put, [
      schedule.name,
      schedule.cron,
      schedule.tz,
      task,
      schedule.nextTick,
      at,
    ]);
    return scheduleFromRow(row!);
  }

  /**
   * Deletes a schedule.
   *
   * @param name Its name.
   * @returns `false` when there was none.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails.
   */
  async deleteSchedule(name: string): Promise<boolean> {
    const sql = this.#check("delete schedule", true);
    return (await run(sql, this.#schedules.delete, [name])).length > 0;
  }

  /**
   * Every schedule, by name.
   *
   * @returns The schedules.
   * @throws {Error} When the store is closed or the server fails.
   */
  async listSchedules(): Promise<ScheduleRecord[]> {
    const sql = this.#check("list schedules");
    return (await run(sql, this.#schedules.list)).map(scheduleFromRow);
  }

  /**
   * Runs one tick of a schedule on a connection of its own: the
   * compare-and-set on its version, then the insert of its task as a
   * commit's insert statement, in one transaction. Of concurrent firers
   * of one tick, the later ones wait for the first's row lock and then
   * find the version moved on.
   *
   * @param fire The tick.
   * @returns Whether it fired, and the insert's outcome.
   * @throws {TypeError} When the task's payload cannot be stored.
   * @throws {Error} When the store is closed or read-only, or the server
   *   fails; nothing is written.
   */
  async fireSchedule(fire: ScheduleFire): Promise<ScheduleFireOutcome> {
    const sql = this.#check("run schedule", true);
    const batch = insertOnlyBatch([fire.task], fire.now);
    const now = Math.floor(fire.now);
    checkTime(now, "run schedule", "now");
    const conn = await sql.reserve();
    try {
      await conn.unsafe("BEGIN").simple();
      try {
        const applied = await run(conn, this.#schedules.fire, [
          fire.tick,
          fire.nextTick,
          now,
          fire.name,
          fire.version,
        ]);
        if (applied.length === 0) {
          await conn.unsafe("ROLLBACK").simple();
          return { fired: false, inserted: null };
        }
        const { inserted } = await this.#commit(conn, batch, true);
        await conn.unsafe("COMMIT").simple();
        return { fired: true, inserted: inserted[0]! };
      } catch (error) {
        await conn.unsafe("ROLLBACK").simple().catch(() => {});
        throw error;
      }
    } finally {
      conn.release();
    }
  }

  /**
   * Ends the connections (the pool and any `LISTEN` connection), letting
   * queries in flight finish for up to 5 seconds. Idempotent.
   *
   * @returns A promise that settles once closed.
   *
   * @example Closing twice
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   * import assert from "node:assert/strict";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   const store = await PostgresTaskStore.open(url, { schema });
   *   await store.close();
   *   await store.close();
   *   await assert.rejects(store.get("x"), /closed/);
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  close(): Promise<void> {
    if (this.#closing === null) {
      this.#closed = true;
      this.#subscriptions.clear();
      this.#closing = (async () => {
        await Promise.all([...this.#unlistening]);
        await this.#listen;
        this.#listen = null;
        await this.#sql.end({ timeout: 5 });
      })();
    }
    return this.#closing;
  }

  /**
   * Closes the store, for `await using`.
   *
   * @returns A promise that settles once closed.
   *
   * @example Scoped store
   * ```ts
   * import { PostgresTaskStore } from "@sluice/sluice/store";
   *
   * const url = Deno.env.get("SLUICE_TEST_PG");
   * if (url !== undefined) {
   *   const schema = `doc_${crypto.randomUUID().slice(0, 8)}`;
   *   {
   *     await using _store = await PostgresTaskStore.open(url, { schema });
   *   }
   *   await PostgresTaskStore.drop(url, { schema });
   * }
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * @throws {TypeError} When `tx` is not a transaction of the `postgres`
 *   client: a pool or reserved connection would commit on its own.
 */
function checkTransaction(tx: unknown): void {
  const candidate = tx as Partial<PostgresTransaction> | null;
  if (
    typeof tx !== "function" && (typeof tx !== "object" || tx === null) ||
    typeof candidate?.unsafe !== "function"
  ) {
    throw new TypeError(
      `Cannot submit in a transaction: tx must be the transaction sql.begin() passes to its callback, got ${
        tx === null ? "null" : typeof tx
      }`,
    );
  }
  if (typeof candidate.savepoint !== "function") {
    throw new TypeError(
      "Cannot submit in a transaction: tx is a client outside any transaction (the insert would commit on its own); pass the tx that sql.begin() gives its callback",
    );
  }
}

/** @throws {TypeError | RangeError} When `url` is not a PostgreSQL URL. */
function checkUrl(url: unknown): void {
  if (typeof url !== "string") {
    throw new TypeError(
      `Cannot open task store: url must be a string, got ${typeof url}`,
    );
  }
  if (!POSTGRES_URL.test(url)) {
    throw new RangeError(
      `Cannot open task store: url must start with postgres:// or postgresql://, got ${
        JSON.stringify(url.replace(/\/\/[^@/]*@/, "//…@"))
      }`,
    );
  }
}

/** Loads the client and creates a pool; no connection is made yet. */
async function connect(
  url: string,
  max: number,
  schema: string,
  readonly = false,
): Promise<Sql> {
  // A full specifier, so a project that imports Sluice by URL or path
  // loads the client without an import map entry of its own.
  const { default: postgresClient } = await import("npm:postgres@3.4.9");
  return postgresClient(url, {
    ...explicitSettings(url),
    max,
    onnotice: () => {},
    // Types are fixed by the casts in every statement, so the per-connection
    // type catalogue query is not needed.
    fetch_types: false,
    // Names the queue in pg_stat_activity, so an operator can tell which
    // schema's workers hold which connections.
    // A read-only store's sessions refuse writes on the server too.
    connection: readonly
      ? {
        application_name: `sluice/${schema}`,
        default_transaction_read_only: true,
      }
      : { application_name: `sluice/${schema}` },
    types: {
      // Epoch-ms values are below 2^53, so int8 reads back as an exact number.
      int8: {
        to: 20,
        from: [20],
        serialize: (value: number) => String(value),
        parse: (value: string) => Number(value),
      },
    },
  }) as unknown as Sql;
}

/**
 * Settings the client would otherwise read from `PG*` environment
 * variables, taken from the URL instead, so that opening a store needs no
 * `--allow-env` beyond `PGAPPNAME` and `PGTARGETSESSIONATTRS` (which the
 * client always reads) and never prompts for one. A setting the URL's
 * query gives (`?sslmode=require`) is left to the client.
 */
function explicitSettings(url: string): Record<string, unknown> {
  const parsed = new URL(url);
  const query = parsed.searchParams;
  const password = decodeURIComponent(parsed.password);
  const settings: Record<string, unknown> = {
    // A function: an empty password would fall through to PGPASSWORD.
    pass: () => password,
  };
  if (parsed.hostname !== "") {
    settings["host"] = decodeURIComponent(parsed.hostname);
    settings["port"] = parsed.port === "" ? 5432 : Number(parsed.port);
  }
  if (parsed.username !== "") {
    settings["user"] = decodeURIComponent(parsed.username);
  }
  const database = decodeURIComponent(parsed.pathname.slice(1));
  if (database !== "") settings["database"] = database;
  const defaults: Record<string, unknown> = {
    ssl: false,
    sslnegotiation: null,
    idle_timeout: null,
    connect_timeout: 30,
    max_pipeline: 100,
    keep_alive: 60,
    prepare: true,
    debug: false,
    publications: "alltables",
    target_session_attrs: null,
  };
  for (const [key, value] of Object.entries(defaults)) {
    const inQuery = query.has(key) ||
      (key === "ssl" && query.has("sslmode")) ||
      (key === "ssl" && query.get("sslrootcert") === "system");
    if (!inQuery) settings[key] = value;
  }
  // max_lifetime and backoff keep the client's own functions; they are
  // read from PGMAX_LIFETIME and PGBACKOFF only when unset here.
  settings["max_lifetime"] = () => 60 * (30 + Math.random() * 30);
  settings["backoff"] = (retries: number) =>
    (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 20);
  return settings;
}

/**
 * Checks, for a read-only open, that the schema holds a Sluice queue at
 * the current version, without creating anything.
 */
async function inspect(
  sql: Sql,
  schema: string,
  q: PostgresQueries,
): Promise<void> {
  const [tables] = await run(sql, q.inspect, [schema]);
  if (tables?.["tasks"] !== true || tables?.["migrations"] !== true) {
    throw new Error(
      `Cannot open task store: schema "${schema}" holds no Sluice queue`,
    );
  }
  const [row] = await sql.unsafe(q.schemaVersion);
  const found = Number(row?.["version"] ?? 0);
  if (found > POSTGRES_SCHEMA_VERSION) {
    throw new Error(
      `Cannot open task store: schema ${schema} has version ${found}, newer than the newest known (${POSTGRES_SCHEMA_VERSION})`,
    );
  }
  if (found < POSTGRES_SCHEMA_VERSION) {
    throw new Error(
      `Cannot open task store read-only: schema ${schema} has version ${found}, older than ${POSTGRES_SCHEMA_VERSION}, and cannot be migrated read-only`,
    );
  }
}

/**
 * Brings the schema up to {@linkcode POSTGRES_SCHEMA_VERSION} in one
 * transaction that first takes the migration advisory lock: a second
 * process waits for the first, then finds every step applied.
 */
async function migrate(
  sql: Sql,
  schema: string,
  q: PostgresQueries,
): Promise<number> {
  return await sql.begin(async (tx) => {
    await tx.unsafe(q.migrationLock);
    await tx.unsafe(q.bootstrap).simple();
    const [row] = await tx.unsafe(q.schemaVersion);
    const found = Number(row?.["version"] ?? 0);
    if (found > POSTGRES_SCHEMA_VERSION) {
      throw new Error(
        `Cannot open task store: schema ${schema} has version ${found}, newer than the newest known (${POSTGRES_SCHEMA_VERSION})`,
      );
    }
    let applied = 0;
    for (const step of POSTGRES_MIGRATIONS) {
      if (step.version <= found) continue;
      try {
        await tx.unsafe(step.sql(`"${schema}"`)).simple();
      } catch (error) {
        throw new Error(
          `Cannot migrate task store schema ${schema}: step ${step.version} (${step.description}) failed`,
          { cause: error },
        );
      }
      await run(tx, q.recordMigration, [step.version, step.description]);
      applied++;
    }
    return applied;
  }) as number;
}
