/**
 * The durable state's SQL: the `tasks` table, its indexes, the migrations
 * that create them (tracked with `PRAGMA user_version`), the connection
 * pragmas, and the text of every statement the SQLite task store runs.
 *
 * Each query that runs on the hot path or on an administrative path over a
 * large table is written to match one index exactly (partial indexes whose
 * `WHERE` term appears verbatim in the query), so none of them scans the
 * table. The claim, lease and success queries name their index (`INDEXED BY`): without statistics the
 * planner may prefer the status index and sort, and `INDEXED BY` turns a
 * lost index into a prepare error instead of a silent scan.
 *
 * @experimental The schema is not yet a stable API.
 * @module
 */
import type { Database } from "./database.ts";

/** One schema step: applied once, in its own transaction, in array order. */
export interface Migration {
  /** The `user_version` the database has once this step is applied. */
  version: number;
  /** What the step does, for error messages. */
  description: string;
  /** The statements of the step, without parameters. */
  sql: string;
}

/**
 * Every schema step, oldest first. Versions are 1, 2, 3, … with no gaps;
 * a released step is never edited, only followed by a new one.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "create tasks and meta",
    sql: `
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        payload TEXT NOT NULL,
        status TEXT NOT NULL
          CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
        attempts INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        lease_until INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        output_key TEXT,
        result TEXT,
        last_error TEXT,
        error_class TEXT CHECK (error_class IN ('transient', 'permanent')),
        version INTEGER NOT NULL
      );
      CREATE INDEX tasks_due ON tasks (run_at)
        WHERE status IN ('queued', 'failed');
      CREATE INDEX tasks_lease ON tasks (lease_until)
        WHERE status = 'running';
      CREATE INDEX tasks_succeeded ON tasks (updated_at)
        WHERE status = 'succeeded';
      CREATE INDEX tasks_status_created ON tasks (status, created_at);
      CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT INTO meta (name, value) VALUES ('stale_settles', 0);
    `,
  },
  {
    version: 2,
    description: "replace the status index with a dead-letter index",
    // Every status change moved a task's entry in tasks_status_created: a
    // sixth of a task's write cost, for listings alone. Other listings now
    // sort; the dead-letter list keeps an index.
    sql: `
      DROP INDEX tasks_status_created;
      CREATE INDEX tasks_dead ON tasks (created_at) WHERE status = 'dead';
    `,
  },
  {
    version: 3,
    description: "record when a claimed task's handler started",
    // No index: the started count reads the running rows through
    // tasks_lease, and a start, which now writes started_at, still touches
    // no index (started_at is in none, nor in any partial index's WHERE).
    // Existing rows read NULL: no start of theirs was recorded.
    sql: `
      ALTER TABLE tasks ADD COLUMN started_at INTEGER;
    `,
  },
  {
    version: 4,
    description:
      "keep counts by status, add key windows and an index for pruning dead tasks",
    // status_counts holds, per status, the rows now in it (n) and the
    // transitions into it ever (entered: the succeeded and dead totals),
    // kept by triggers in the writing transaction, so status() reads five
    // rows instead of counting the table. Seeded from the rows present;
    // entered starts there too. The UPDATE trigger is limited to
    // statements that set status (renewals and starts do not fire it) and
    // to rows whose status changed.
    // tasks_dead_updated lets prune take the oldest dead rows by
    // updated_at, as tasks_succeeded does for succeeded ones.
    // dedupe_until is in no index: the takeover reads it from the row the
    // key index finds.
    sql: `
      ALTER TABLE tasks ADD COLUMN dedupe_until INTEGER;
      CREATE INDEX tasks_dead_updated ON tasks (updated_at)
        WHERE status = 'dead';
      CREATE TABLE status_counts (
        status TEXT PRIMARY KEY,
        n INTEGER NOT NULL,
        entered INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO status_counts (status, n, entered)
        SELECT column1, 0, 0 FROM (VALUES ('queued'), ('running'),
          ('succeeded'), ('failed'), ('dead'));
      UPDATE status_counts SET n = c.n, entered = c.n
        FROM (SELECT status, count(*) AS n FROM tasks GROUP BY status) AS c
        WHERE status_counts.status = c.status;
      CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
        UPDATE status_counts SET n = n + 1, entered = entered + 1
          WHERE status = NEW.status;
      END;
      CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
        UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
      END;
      CREATE TRIGGER tasks_count_update AFTER UPDATE OF status ON tasks
        WHEN OLD.status <> NEW.status BEGIN
        UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
        UPDATE status_counts SET n = n + 1, entered = entered + 1
          WHERE status = NEW.status;
      END;
    `,
  },
  {
    version: 5,
    description:
      "count in the store's own statements instead of triggers, and total the tasks submitted",
    // The triggers cost a fifth of the group commit's write speed; the
    // store now adds each transaction's net change to status_counts with
    // one statement (QUERIES.addCounts). The counts are recomputed from the
    // rows, as recount() does; the succeeded and dead totals (entered) are
    // history and stay. A sixth row, 'submitted', totals the tasks ever
    // inserted in entered (its n stays 0), starting from the rows held.
    // status() counts the due retries through tasks_failed_due, a
    // covering range of the failed rows only (status is a column so that
    // SQLite reads no row for it): it holds no entry for the
    // queued, running and finished rows, so the writes of tasks that do
    // not fail never touch it.
    sql: `
      DROP TRIGGER tasks_count_insert;
      DROP TRIGGER tasks_count_delete;
      DROP TRIGGER tasks_count_update;
      UPDATE status_counts SET n = 0;
      UPDATE status_counts SET n = c.n
        FROM (SELECT status, count(*) AS n FROM tasks GROUP BY status) AS c
        WHERE status_counts.status = c.status;
      INSERT INTO status_counts (status, n, entered)
        SELECT 'submitted', 0, count(*) FROM tasks;
      CREATE INDEX tasks_failed_due ON tasks (run_at, status)
        WHERE status = 'failed';
    `,
  },
  {
    version: 6,
    description: "add named queues, priorities and paused queues",
    // Adding a column with a constant default rewrites no row. Claims read
    // tasks_claim, one queue at a time, in claim order (highest priority,
    // then run_at, then rowid); tasks_due stays for the oldest due task
    // across queues that status reports.
    sql: `
      ALTER TABLE tasks ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
      ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX tasks_claim ON tasks (queue, priority DESC, run_at)
        WHERE status IN ('queued', 'failed');
      CREATE TABLE queues (
        name TEXT PRIMARY KEY,
        paused INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 7,
    description: "keep a running task's progress and checkpoint",
    // JSON text, NULL when none. In no index, so a progress or checkpoint
    // write touches only its row. Existing rows read NULL.
    sql: `
      ALTER TABLE tasks ADD COLUMN progress TEXT;
      ALTER TABLE tasks ADD COLUMN checkpoint TEXT;
    `,
  },
  {
    version: 8,
    description: "add schedules",
    // One row per schedule. task is the task template as JSON; version is
    // the compare-and-set token of every write, so of the processes running
    // one tick only the first advances last_tick and inserts the task.
    sql: `
      CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        cron TEXT NOT NULL,
        tz TEXT NOT NULL,
        task TEXT NOT NULL,
        next_tick INTEGER,
        last_tick INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    description: "keep counts and prune by queue",
    // status_counts gains the queue: one row per queue and status (and a
    // 'submitted' row per queue), so status reads each queue's counts as
    // it reads the totals, and retention counts each queue's finished
    // tasks. The counts are recomputed from the rows; the totals held
    // before (history, not split by queue) go to the default queue, so
    // the sums over queues stay what they were. The prune indexes lead
    // with the queue: each queue's oldest finished rows are the first
    // entries of its range.
    sql: `
      CREATE TABLE queue_status_counts (
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        n INTEGER NOT NULL,
        entered INTEGER NOT NULL,
        PRIMARY KEY (queue, status)
      ) WITHOUT ROWID;
      INSERT INTO queue_status_counts (queue, status, n, entered)
        SELECT queue, status, count(*), 0 FROM tasks GROUP BY queue, status;
      INSERT INTO queue_status_counts (queue, status, n, entered)
        SELECT 'default', status, 0, entered FROM status_counts
        WHERE entered > 0
        ON CONFLICT (queue, status) DO UPDATE SET entered = excluded.entered;
      DROP TABLE status_counts;
      ALTER TABLE queue_status_counts RENAME TO status_counts;
      DROP INDEX tasks_succeeded;
      DROP INDEX tasks_dead_updated;
      CREATE INDEX tasks_succeeded ON tasks (queue, updated_at)
        WHERE status = 'succeeded';
      CREATE INDEX tasks_dead_updated ON tasks (queue, updated_at)
        WHERE status = 'dead';
    `,
  },
];

/** The newest `user_version` this code knows: the last migration's. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!
  .version;

/** Values accepted for `PRAGMA synchronous`. */
export const SYNCHRONOUS_MODES: readonly ["NORMAL", "FULL", "OFF"] = [
  "NORMAL",
  "FULL",
  "OFF",
];

/**
 * The text of every statement the SQLite task store runs. Values are always
 * bound as `?` parameters, never spliced into the text.
 */
export const QUERIES = {
  begin: "BEGIN IMMEDIATE",
  commit: "COMMIT",
  rollback: "ROLLBACK",
  userVersion: "PRAGMA user_version",
  // No attempt is charged on insert, even for a claimed insert,
  // nor is a start recorded (started_at NULL).
  insert:
    "INSERT INTO tasks (id, type, idempotency_key, payload, status, attempts, " +
    "max_attempts, run_at, lease_until, started_at, created_at, updated_at, " +
    "output_key, result, last_error, error_class, version, dedupe_until, " +
    "queue, priority) " +
    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, NULL, ?, ?, NULL, NULL, NULL, NULL, ?, ?, " +
    "?, ?) " +
    "ON CONFLICT (idempotency_key) DO NOTHING",
  byId: "SELECT * FROM tasks WHERE id = ?",
  byKey: "SELECT * FROM tasks WHERE idempotency_key = ?",
  // A key whose window has passed: its holder gives it up and keeps the
  // rest of its record (its status, so no count, changes).
  releaseKey: "UPDATE tasks SET idempotency_key = NULL WHERE id = ?",
  // The handler started: charge one attempt and record when (binds now).
  // The version stays, so the claim's later renewals, settle or release
  // still match.
  start: "UPDATE tasks SET attempts = attempts + 1, started_at = ? " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  // The store ends each settle and the release with "AND queue = ?" when
  // the caller gives the claim's queue, or with "RETURNING queue".
  // Each settle binds the charge (0 or 1) and the start estimate (or
  // NULL): a settle whose start was never written charges its attempt,
  // and records when it started, in the same UPDATE. A recorded
  // started_at is kept, so a finished task shows its last recorded start.
  settleSucceeded:
    "UPDATE tasks SET status = 'succeeded', result = ?, output_key = ?, " +
    "attempts = attempts + ?, started_at = coalesce(started_at, ?), " +
    "lease_until = NULL, updated_at = ?, version = version + 1 " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  settleRetry:
    "UPDATE tasks SET status = 'failed', run_at = ?, last_error = ?, " +
    "error_class = ?, attempts = attempts + ?, " +
    "started_at = coalesce(started_at, ?), " +
    "lease_until = NULL, updated_at = ?, version = version + 1 " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  settleDead: "UPDATE tasks SET status = 'dead', last_error = ?, " +
    "error_class = ?, attempts = attempts + ?, " +
    "started_at = coalesce(started_at, ?), " +
    "lease_until = NULL, updated_at = ?, version = version + 1 " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  // Binds the refund (0 or 1); attempts never go below 0. run_at is kept,
  // so the task is due again at once.
  release: "UPDATE tasks SET status = 'queued', lease_until = NULL, " +
    "started_at = NULL, attempts = max(attempts - ?, 0), updated_at = ?, " +
    "version = version + 1 " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  renew: "UPDATE tasks SET lease_until = ? " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  // Fenced like a renewal; the version stays. A requeue clears both.
  progress: "UPDATE tasks SET progress = ? " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  checkpoint: "UPDATE tasks SET checkpoint = ? " +
    "WHERE id = ? AND version = ? AND status = 'running'",
  countStale: "UPDATE meta SET value = value + ? WHERE name = 'stale_settles'",
  staleSettles: "SELECT value FROM meta WHERE name = 'stale_settles'",
  // A claim reads each of its queues' due rows through tasks_claim, in
  // claim order (priority, then run_at, then rowid: the index's own
  // order, so no sort), at most LIMIT per queue; the store merges them,
  // keeps the first claimDue, and claims those by rowid. The status read
  // here tells the counts which claimed rows leave failed. A claim
  // charges no attempt and clears the previous claim's start: the
  // handler's start charges and records it.
  claimCandidates: "SELECT rowid AS r, status AS s, priority AS p, " +
    "run_at AS a FROM tasks INDEXED BY tasks_claim " +
    "WHERE queue = ? AND status IN ('queued', 'failed') AND run_at <= ? " +
    "ORDER BY priority DESC, run_at, rowid LIMIT ?",
  // The same, for a claimer that runs only some task types.
  claimCandidatesOfTypes: "SELECT rowid AS r, status AS s, priority AS p, " +
    "run_at AS a FROM tasks INDEXED BY tasks_claim " +
    "WHERE queue = ? AND status IN ('queued', 'failed') AND run_at <= ? " +
    "AND type IN (SELECT value FROM json_each(?)) " +
    "ORDER BY priority DESC, run_at, rowid LIMIT ?",
  claimRows: "UPDATE tasks SET status = 'running', " +
    "version = version + 1, lease_until = ?, started_at = NULL, " +
    "updated_at = ? " +
    "WHERE rowid IN (SELECT value FROM json_each(?)) " +
    "AND status IN ('queued', 'failed') " +
    "RETURNING *, rowid AS seq",
  pausedQueues: "SELECT name FROM queues WHERE paused = 1",
  setPaused: "INSERT INTO queues (name, paused, updated_at) VALUES (?, ?, ?) " +
    "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, " +
    "updated_at = excluded.updated_at",
  queueStates: "SELECT name, paused, updated_at FROM queues ORDER BY name",
  // Cancel: any unfinished status to dead, with a new version, so a
  // running claim's renewals and settle are refused.
  statusOf: "SELECT status, queue FROM tasks WHERE id = ?",
  cancel: "UPDATE tasks SET status = 'dead', last_error = ?, " +
    "error_class = 'permanent', lease_until = NULL, updated_at = ?, " +
    "version = version + 1 " +
    "WHERE id = ? AND status IN ('queued', 'failed', 'running')",
  removeId: "DELETE FROM tasks WHERE id = ? AND status <> 'running'",
  expireToDead:
    "UPDATE tasks INDEXED BY tasks_lease SET status = 'dead', last_error = ?, " +
    "error_class = 'transient', lease_until = NULL, started_at = NULL, " +
    "updated_at = ?, version = version + 1 " +
    "WHERE status = 'running' AND lease_until < ? AND attempts >= max_attempts " +
    "RETURNING queue",
  expireToQueued:
    "UPDATE tasks INDEXED BY tasks_lease SET status = 'queued', lease_until = NULL, " +
    "started_at = NULL, updated_at = ?, version = version + 1 " +
    "WHERE status = 'running' AND lease_until < ? RETURNING queue",
  requeueId: "UPDATE tasks SET status = 'queued', attempts = 0, run_at = ?, " +
    "lease_until = NULL, started_at = NULL, progress = NULL, " +
    "checkpoint = NULL, updated_at = ?, " +
    "version = version + 1 " +
    "WHERE id = ? AND status = 'dead' RETURNING queue",
  // The dead rows by queue, counted through the prune index (in queue
  // order, so no sort), before requeueAll moves them.
  deadByQueue: "SELECT queue, count(*) AS n FROM tasks " +
    "INDEXED BY tasks_dead_updated " +
    "WHERE status = 'dead' GROUP BY queue",
  requeueAll: "UPDATE tasks SET status = 'queued', attempts = 0, run_at = ?, " +
    "lease_until = NULL, started_at = NULL, progress = NULL, " +
    "checkpoint = NULL, updated_at = ?, " +
    "version = version + 1 " +
    "WHERE status = 'dead'",
  // Administration only: these scan and sort. The dead-letter list, which
  // operators page through, has its own index.
  listAll: "SELECT * FROM tasks ORDER BY created_at, rowid LIMIT ? OFFSET ?",
  listByStatus: "SELECT * FROM tasks WHERE status = ? " +
    "ORDER BY created_at, rowid LIMIT ? OFFSET ?",
  listByQueue: "SELECT * FROM tasks WHERE queue = ? " +
    "AND (? IS NULL OR status = ?) " +
    "ORDER BY created_at, rowid LIMIT ? OFFSET ?",
  listDead: "SELECT * FROM tasks INDEXED BY tasks_dead WHERE status = 'dead' " +
    "ORDER BY created_at, rowid LIMIT ? OFFSET ?",
  // The running rows (what `status` lists with their progress), read
  // through the lease index and sorted: a few per worker process.
  listRunning: "SELECT * FROM tasks INDEXED BY tasks_lease " +
    "WHERE status = 'running' ORDER BY created_at, rowid LIMIT ? OFFSET ?",
  // Adds one transaction's net change of one queue ($1) to the counts (n:
  // queued, running, succeeded, failed, dead) and totals (entered:
  // succeeded, dead, submitted), in one statement over the queue's six
  // rows of status_counts, creating them the first time.
  addCounts: "INSERT INTO status_counts (queue, status, n, entered) VALUES " +
    "(?1, 'queued', ?2, 0), (?1, 'running', ?3, 0), " +
    "(?1, 'succeeded', ?4, ?7), (?1, 'failed', ?5, 0), " +
    "(?1, 'dead', ?6, ?8), (?1, 'submitted', 0, ?9) " +
    "ON CONFLICT (queue, status) DO UPDATE SET n = n + excluded.n, " +
    "entered = entered + excluded.entered",
  // For recount(): every count to 0, then the rows' (one scan, grouped).
  zeroCounts: "UPDATE status_counts SET n = 0",
  recount: "INSERT INTO status_counts (queue, status, n, entered) " +
    "SELECT queue, status, count(*), 0 FROM tasks WHERE true " +
    "GROUP BY queue, status " +
    "ON CONFLICT (queue, status) DO UPDATE SET n = excluded.n",
  // Six rows per queue kept by the store's writes, never the tasks table.
  statusCounts: "SELECT queue, status, n, entered FROM status_counts",
  // The queues holding finished rows, and how many.
  countsOf: "SELECT queue, status, n FROM status_counts " +
    "WHERE status IN ('succeeded', 'dead') AND n > 0 ORDER BY queue",
  oldestDue: "SELECT min(run_at) AS oldest FROM tasks INDEXED BY tasks_due " +
    "WHERE status IN ('queued', 'failed') AND run_at <= ?",
  // The due prefix of tasks_failed_due, read from the index alone: as
  // many entries as there are due retries.
  dueFailed: "SELECT count(*) AS n FROM tasks INDEXED BY tasks_failed_due " +
    "WHERE status = 'failed' AND run_at <= ?",
  // Pruning takes each queue's oldest rows of each finished status
  // through the status's partial index on (queue, updated_at) (rowid
  // breaks ties, as the index does): first the rows beyond the count kept
  // (LIMIT min(excess, limit)), then, past those (OFFSET), the rows
  // finished before the cutoff. The two are prefixes of one order, so
  // together they are the longer one. Each read walks the queue's range
  // of the index in order and stops at its LIMIT (no sort); SQLite
  // re-reads each candidate's row for the status term, so a prune touches
  // at most about twice its limit in rows.
  oldestSucceeded: "SELECT rowid AS r, updated_at AS u " +
    "FROM tasks INDEXED BY tasks_succeeded " +
    "WHERE queue = ? AND status = 'succeeded' " +
    "ORDER BY updated_at, rowid LIMIT ?",
  oldestSucceededBefore: "SELECT rowid AS r, updated_at AS u " +
    "FROM tasks INDEXED BY tasks_succeeded " +
    "WHERE queue = ? AND status = 'succeeded' AND updated_at < ? " +
    "ORDER BY updated_at, rowid LIMIT ? OFFSET ?",
  oldestDead: "SELECT rowid AS r, updated_at AS u " +
    "FROM tasks INDEXED BY tasks_dead_updated " +
    "WHERE queue = ? AND status = 'dead' " +
    "ORDER BY updated_at, rowid LIMIT ?",
  oldestDeadBefore: "SELECT rowid AS r, updated_at AS u " +
    "FROM tasks INDEXED BY tasks_dead_updated " +
    "WHERE queue = ? AND status = 'dead' AND updated_at < ? " +
    "ORDER BY updated_at, rowid LIMIT ? OFFSET ?",
  // Deletes the rows chosen above (a JSON array of rowids, at most the
  // prune's limit), by rowid; the status check keeps a row that is no
  // longer finished.
  deleteRows: "DELETE FROM tasks WHERE rowid IN " +
    "(SELECT value FROM json_each(?)) AND status IN ('succeeded', 'dead')",
  // For prunable: a queue's rows finished before a cutoff, counted in the
  // index.
  countSucceededBefore:
    "SELECT count(*) AS n FROM tasks INDEXED BY tasks_succeeded " +
    "WHERE queue = ? AND status = 'succeeded' AND updated_at < ?",
  countDeadBefore:
    "SELECT count(*) AS n FROM tasks INDEXED BY tasks_dead_updated " +
    "WHERE queue = ? AND status = 'dead' AND updated_at < ?",
  // Reads only the running rows, through the partial lease index.
  startedRunning: "SELECT count(*) AS n FROM tasks INDEXED BY tasks_lease " +
    "WHERE status = 'running' AND started_at IS NOT NULL",
} as const;

/** The most rows one multi-row statement writes. */
export const MAX_ROWS = 32;

/**
 * Splits `n` rows into the row counts of multi-row statements: powers of
 * two up to {@linkcode MAX_ROWS}, largest first, so that each statement
 * has at most six forms to prepare.
 *
 * @param n How many rows.
 * @returns The counts, adding up to `n`.
 */
export function rowChunks(n: number): number[] {
  const chunks: number[] = [];
  for (let left = n, size = MAX_ROWS; left > 0; size >>= 1) {
    while (left >= size) {
      chunks.push(size);
      left -= size;
    }
  }
  return chunks;
}

/** A statement's text for each row count, made once per count. */
class RowForms {
  #texts = new Map<number, string>();
  #make: (rows: number) => string;

  constructor(make: (rows: number) => string) {
    this.#make = make;
  }

  /** The text for `rows` rows. */
  of(rows: number): string {
    let text = this.#texts.get(rows);
    if (text === undefined) this.#texts.set(rows, text = this.#make(rows));
    return text;
  }
}

/**
 * Inserts of tasks without an idempotency key, several rows per statement
 * (nothing can conflict but the id, which throws), binding per row what
 * `QUERIES.insert` binds (the key NULL): one statement's overhead for
 * many rows.
 */
export const INSERT_ROWS: RowForms = new RowForms((rows) =>
  "INSERT INTO tasks (id, type, idempotency_key, payload, status, attempts, " +
  "max_attempts, run_at, lease_until, started_at, created_at, updated_at, " +
  "output_key, result, last_error, error_class, version, dedupe_until, " +
  "queue, priority) VALUES " +
  Array.from(
    { length: rows },
    () =>
      "(?, ?, ?, ?, ?, 0, ?, ?, ?, NULL, ?, ?, NULL, NULL, NULL, NULL, ?, " +
      "?, ?, ?)",
  ).join(", ")
);

/**
 * Successful settles of several claims in one statement, each fenced by
 * its version like `QUERIES.settleSucceeded`, and by its queue unless that
 * is NULL: binds `now`, then per settle the id, version, queue (or NULL),
 * result, output key, charge and start estimate. The ids must differ;
 * RETURNING names the settles that applied, with their queues (SQLite
 * reads each id through the primary key's index).
 */
export const SETTLE_SUCCEEDED_ROWS: RowForms = new RowForms((rows) =>
  "UPDATE tasks SET status = 'succeeded', result = v.column4, " +
  "output_key = v.column5, attempts = attempts + v.column6, " +
  "started_at = coalesce(started_at, v.column7), lease_until = NULL, " +
  "updated_at = ?1, version = version + 1 FROM (VALUES " +
  Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?, ?)").join(", ") +
  ") AS v WHERE tasks.id = v.column1 AND tasks.version = v.column2 " +
  "AND tasks.status = 'running' " +
  "AND (v.column3 IS NULL OR tasks.queue = v.column3) " +
  "RETURNING tasks.id AS id, tasks.queue AS queue"
);

/** Connection settings applied by {@linkcode applyPragmas}. */
export interface PragmaSettings {
  /** `PRAGMA synchronous`. */
  synchronous: "NORMAL" | "FULL" | "OFF";
  /** `PRAGMA busy_timeout`, in ms. */
  busyTimeoutMs: number;
  /** Whether to switch the database to WAL (writers only). */
  wal: boolean;
}

/**
 * Applies the connection pragmas. Pragmas take no parameters, so the values
 * are checked here against the closed set they come from before they are
 * written into the statement.
 *
 * @param db The open database.
 * @param settings The validated settings.
 * @throws {RangeError} When a setting is outside its allowed values.
 */
export function applyPragmas(db: Database, settings: PragmaSettings): void {
  if (!SYNCHRONOUS_MODES.includes(settings.synchronous)) {
    throw new RangeError(
      `Cannot apply pragmas: synchronous must be NORMAL, FULL or OFF, got ${
        JSON.stringify(settings.synchronous)
      }`,
    );
  }
  if (
    !Number.isSafeInteger(settings.busyTimeoutMs) || settings.busyTimeoutMs < 0
  ) {
    throw new RangeError(
      `Cannot apply pragmas: busyTimeoutMs must be a non-negative integer, got ${settings.busyTimeoutMs}`,
    );
  }
  db.exec(`PRAGMA busy_timeout = ${settings.busyTimeoutMs}`);
  if (settings.wal) db.exec("PRAGMA journal_mode = WAL");
  db.exec(`PRAGMA synchronous = ${settings.synchronous}`);
}

/**
 * Reads the database's `PRAGMA user_version`.
 *
 * @param db The open database.
 * @returns The schema version recorded in the file (0 for a new file).
 */
export function readUserVersion(db: Database): number {
  const value = db.prepare(QUERIES.userVersion).get()?.["user_version"];
  return Number(value ?? 0);
}

/**
 * Refuses a database whose schema is newer than this code knows.
 *
 * @param db The open database.
 * @param path The path, for the message.
 * @returns The database's schema version.
 * @throws {Error} When the file's `user_version` is newer than {@linkcode SCHEMA_VERSION}.
 */
export function checkSchemaVersion(db: Database, path: string): number {
  const found = readUserVersion(db);
  if (found > SCHEMA_VERSION) {
    throw new Error(
      `Cannot open task store ${path}: schema version ${found} is newer than the newest known (${SCHEMA_VERSION})`,
    );
  }
  return found;
}

/**
 * Brings the schema up to {@linkcode SCHEMA_VERSION}. Each step runs in its
 * own `BEGIN IMMEDIATE` transaction and re-reads `user_version` once it holds
 * the write lock, so two processes migrating at once apply each step once.
 * Re-running on an up-to-date database does nothing.
 *
 * @param db The open database (writable).
 * @param path The path, for messages.
 * @returns How many steps were applied.
 * @throws {Error} When the schema is newer than known, or a step fails (it is rolled back).
 */
export function migrate(db: Database, path: string): number {
  let applied = 0;
  if (checkSchemaVersion(db, path) >= SCHEMA_VERSION) return applied;
  for (const step of MIGRATIONS) {
    db.exec("BEGIN IMMEDIATE");
    try {
      const current = checkSchemaVersion(db, path);
      if (current < step.version) {
        db.exec(step.sql);
        // The version is an integer constant from MIGRATIONS, not input.
        db.exec(`PRAGMA user_version = ${step.version}`);
        applied++;
      }
      db.exec("COMMIT");
    } catch (error) {
      try {
        db.exec("ROLLBACK");
      } catch {
        // The failed step may already have ended the transaction.
      }
      if (error instanceof Error && error.message.startsWith("Cannot open")) {
        throw error;
      }
      throw new Error(
        `Cannot migrate task store ${path}: step ${step.version} (${step.description}) failed`,
        { cause: error },
      );
    }
  }
  return applied;
}
