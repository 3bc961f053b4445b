/**
 * The PostgreSQL store's SQL: the schema Sluice owns (its migrations,
 * tracked in `<schema>.migrations`), and the text of every statement the
 * PostgreSQL task store runs.
 *
 * Batches travel as one JSON array per statement (`json_to_recordset`), so
 * a commit is a fixed number of statements however many tasks it carries,
 * and no value is ever spliced into SQL text. The only spliced identifier
 * is the schema name, checked by {@linkcode validateSchemaName} and quoted.
 *
 * @experimental The schema is not yet a stable API.
 * @module
 */

/** One schema step: applied once, in array order, under the migration lock. */
export interface PostgresMigration {
  /** The version recorded in `<schema>.migrations` once the step is applied. */
  version: number;
  /** What the step does, for error messages and the migrations table. */
  description: string;
  /**
   * The statements of the step, without parameters, for the given quoted
   * schema identifier.
   */
  sql: (schema: string) => string;
}

/**
 * The key of the transaction-scoped advisory lock that serializes
 * migrations, across schemas and processes. ASCII "sluice" as an integer.
 */
export const MIGRATION_LOCK_KEY = 0x736c75696365;

/**
 * The high 32 bits of the transaction-scoped advisory lock one prune of a
 * schema holds (ASCII "slpr"); the low 32 bits are the schema's oid, so
 * prunes of different schemas do not exclude each other. Taken with
 * `pg_try_advisory_xact_lock`: a second pruner skips instead of waiting.
 */
export const PRUNE_LOCK_CLASS = 0x736c7072;

/**
 * Like {@linkcode PRUNE_LOCK_CLASS}, for folding the count deltas
 * ("slfo"): held by whichever transaction folds, a prune or a commit.
 */
export const FOLD_LOCK_CLASS = 0x736c666f;

/** The channel commits `NOTIFY` on; the payload is the schema name. */
export const NOTIFY_CHANNEL = "sluice_tasks";

/**
 * Every schema step, oldest first. Versions are 1, 2, 3, … with no gaps; a
 * released step is never edited, only followed by a new one.
 *
 * The due-work index is on `(run_at, seq)` under the claim's own predicate,
 * so the claim's `ORDER BY run_at, seq LIMIT n` reads the index in order and
 * stops after `n` entries; `seq` is the insertion order (ties on `run_at`
 * are claimed first in, first out, as in the SQLite store).
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    description: "create tasks and meta",
    sql: (s) => `
      CREATE TABLE ${s}.tasks (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        type text NOT NULL,
        idempotency_key text UNIQUE,
        payload jsonb NOT NULL,
        status text NOT NULL
          CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
        attempts integer NOT NULL,
        max_attempts integer NOT NULL,
        run_at bigint NOT NULL,
        lease_until bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        output_key text,
        result jsonb,
        last_error text,
        error_class text CHECK (error_class IN ('transient', 'permanent')),
        version integer NOT NULL
      );
      CREATE INDEX tasks_due ON ${s}.tasks (run_at, seq)
        WHERE status IN ('queued', 'failed');
      CREATE INDEX tasks_lease ON ${s}.tasks (lease_until)
        WHERE status = 'running';
      CREATE INDEX tasks_succeeded ON ${s}.tasks (updated_at)
        WHERE status = 'succeeded';
      CREATE INDEX tasks_status_created ON ${s}.tasks (status, created_at, seq);
      CREATE INDEX tasks_created ON ${s}.tasks (created_at, seq);
      CREATE TABLE ${s}.meta (
        name text PRIMARY KEY,
        value bigint NOT NULL
      );
      INSERT INTO ${s}.meta (name, value) VALUES ('stale_settles', 0);
    `,
  },
  {
    version: 2,
    description: "record when a claimed task's handler started",
    // A nullable column without a default: a catalog change, no table
    // rewrite; existing rows read NULL (no start of theirs was recorded).
    // No index: the started count reads the running rows through an index
    // on status (tasks_lease or tasks_status_created), and an index on
    // started_at would make every start a non-HOT update, writing an entry
    // into each index; a start now stays as HOT-eligible as before.
    sql: (s) => `
      ALTER TABLE ${s}.tasks ADD COLUMN started_at bigint;
    `,
  },
  {
    version: 3,
    description:
      "keep counts by status, add key windows and indexes for pruning",
    // Counts without a hot row: every statement that changes tasks appends
    // its net change per status to status_deltas (statement-level triggers
    // with transition tables, in the writing transaction), an insert-only
    // table with no index, so concurrent commits never wait on each other
    // there. status_counts holds one row per status that only a fold
    // (under the fold advisory lock) changes: it deletes the deltas its
    // snapshot sees and adds them to the rows, in one statement. A read
    // sums the rows and the deltas not yet folded. n is the rows now in a
    // status, entered the transitions into it ever (the totals); both are
    // seeded from the rows present (ALTER TABLE holds writers off until
    // this step commits). PostgreSQL refuses transition tables on a
    // trigger with a column list (UPDATE OF status), so the UPDATE trigger
    // fires for every UPDATE and keeps only the rows whose status changed.
    // The prune indexes order each finished status by (updated_at, seq);
    // the succeeded one replaces tasks_succeeded (updated_at only), whose
    // window count is gone.
    sql: (s) => `
      ALTER TABLE ${s}.tasks ADD COLUMN dedupe_until bigint;
      CREATE INDEX tasks_succeeded_updated ON ${s}.tasks (updated_at, seq)
        WHERE status = 'succeeded';
      DROP INDEX ${s}.tasks_succeeded;
      CREATE INDEX tasks_dead_updated ON ${s}.tasks (updated_at, seq)
        WHERE status = 'dead';
      CREATE TABLE ${s}.status_counts (
        status text PRIMARY KEY,
        n bigint NOT NULL,
        entered bigint NOT NULL
      );
      CREATE TABLE ${s}.status_deltas (
        status text NOT NULL,
        n bigint NOT NULL,
        entered bigint NOT NULL
      );
      INSERT INTO ${s}.status_counts (status, n, entered)
        SELECT v.status, coalesce(c.n, 0), coalesce(c.n, 0)
        FROM (VALUES ('queued'), ('running'), ('succeeded'), ('failed'),
          ('dead')) AS v(status)
        LEFT JOIN (SELECT status, count(*) AS n FROM ${s}.tasks
          GROUP BY status) c ON c.status = v.status;
      CREATE FUNCTION ${s}.count_inserted() RETURNS trigger
        LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${s}.status_deltas (status, n, entered)
          SELECT status, count(*), count(*) FROM inserted GROUP BY status;
        RETURN NULL;
      END $$;
      CREATE FUNCTION ${s}.count_deleted() RETURNS trigger
        LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${s}.status_deltas (status, n, entered)
          SELECT status, -count(*), 0 FROM deleted GROUP BY status;
        RETURN NULL;
      END $$;
      CREATE FUNCTION ${s}.count_updated() RETURNS trigger
        LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${s}.status_deltas (status, n, entered)
          SELECT d.status, sum(d.n), sum(d.entered)
          FROM old_rows o JOIN new_rows a ON a.id = o.id
          CROSS JOIN LATERAL (VALUES (o.status, -1, 0), (a.status, 1, 1))
            AS d(status, n, entered)
          WHERE a.status <> o.status
          GROUP BY d.status;
        RETURN NULL;
      END $$;
      CREATE TRIGGER tasks_count_insert AFTER INSERT ON ${s}.tasks
        REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_inserted();
      CREATE TRIGGER tasks_count_delete AFTER DELETE ON ${s}.tasks
        REFERENCING OLD TABLE AS deleted
        FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_deleted();
      CREATE TRIGGER tasks_count_update AFTER UPDATE ON ${s}.tasks
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION ${s}.count_updated();
    `,
  },
  {
    version: 4,
    description:
      "count in the store's own statements instead of triggers, and total the tasks submitted",
    // The statement triggers cost a seventh of the group commit; each
    // transaction of the store now appends its net change to
    // status_deltas with one statement of its own (queries.count). The
    // triggers' lock on tasks holds writers off until this step commits,
    // so the rows read here are all there is: the pending deltas' totals
    // are folded into status_counts, the counts recomputed from the rows
    // (as recount() does), and a row 'submitted' added, whose entered
    // totals the tasks ever inserted (its n stays 0), starting from the
    // rows held. status() counts the due retries through
    // tasks_failed_due, which holds the failed rows only: the writes of
    // tasks that do not fail never touch it.
    sql: (s) => `
      DROP TRIGGER tasks_count_insert ON ${s}.tasks;
      DROP TRIGGER tasks_count_delete ON ${s}.tasks;
      DROP TRIGGER tasks_count_update ON ${s}.tasks;
      DROP FUNCTION ${s}.count_inserted();
      DROP FUNCTION ${s}.count_deleted();
      DROP FUNCTION ${s}.count_updated();
      UPDATE ${s}.status_counts c SET entered = c.entered + d.entered
        FROM (SELECT status, sum(entered) AS entered FROM ${s}.status_deltas
          GROUP BY status) d
        WHERE c.status = d.status;
      DELETE FROM ${s}.status_deltas;
      UPDATE ${s}.status_counts SET n = 0;
      UPDATE ${s}.status_counts c SET n = r.n
        FROM (SELECT status, count(*) AS n FROM ${s}.tasks GROUP BY status) r
        WHERE c.status = r.status;
      INSERT INTO ${s}.status_counts (status, n, entered)
        SELECT 'submitted', 0, count(*) FROM ${s}.tasks;
      CREATE INDEX tasks_failed_due ON ${s}.tasks (run_at)
        WHERE status = 'failed';
    `,
  },
  {
    version: 5,
    description: "add named queues, priorities and paused queues",
    // A column with a constant default rewrites no row. Claims read
    // tasks_claim, one queue at a time, in claim order (highest priority,
    // then run_at, then seq); tasks_due stays for the oldest due task
    // across queues that status reports.
    sql: (s) => `
      ALTER TABLE ${s}.tasks ADD COLUMN queue text NOT NULL DEFAULT 'default';
      ALTER TABLE ${s}.tasks ADD COLUMN priority integer NOT NULL DEFAULT 0;
      CREATE INDEX tasks_claim ON ${s}.tasks (queue, priority DESC, run_at, seq)
        WHERE status IN ('queued', 'failed');
      CREATE TABLE ${s}.queues (
        name text PRIMARY KEY,
        paused boolean NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
  },
  {
    version: 6,
    description: "keep a running task's progress and checkpoint",
    // Nullable columns without a default: a catalog change, no table
    // rewrite; existing rows read NULL. In no index, so a progress or
    // checkpoint write stays a HOT update.
    sql: (s) => `
      ALTER TABLE ${s}.tasks ADD COLUMN progress jsonb,
        ADD COLUMN checkpoint jsonb;
    `,
  },
  {
    version: 7,
    description: "add schedules",
    // One row per schedule. task is the task template; version is the
    // compare-and-set token of every write, so of the processes running
    // one tick only the first advances last_tick and inserts the task.
    sql: (s) => `
      CREATE TABLE ${s}.schedules (
        name text PRIMARY KEY,
        cron text NOT NULL,
        tz text NOT NULL,
        task jsonb NOT NULL,
        next_tick bigint,
        last_tick bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        version integer NOT NULL
      );
    `,
  },
  {
    version: 8,
    description: "keep counts and prune by queue",
    // status_counts and status_deltas gain the queue: one row per queue
    // and status, so status reads each queue's counts as it reads the
    // totals, and retention counts each queue's finished tasks. The
    // pending deltas' totals and the totals held (history, not split by
    // queue) go to the default queue, so the sums over queues stay what
    // they were; the counts are recomputed from the rows (ALTER TABLE holds
    // writers off until this step commits). Rows that count nothing are
    // dropped. The prune indexes lead with the queue: each queue's oldest
    // finished rows are the first entries of its range.
    sql: (s) => `
      ALTER TABLE ${s}.status_deltas
        ADD COLUMN queue text NOT NULL DEFAULT 'default';
      ALTER TABLE ${s}.status_counts
        ADD COLUMN queue text NOT NULL DEFAULT 'default';
      ALTER TABLE ${s}.status_counts DROP CONSTRAINT status_counts_pkey;
      ALTER TABLE ${s}.status_counts ADD PRIMARY KEY (queue, status);
      UPDATE ${s}.status_counts c SET entered = c.entered + d.entered
        FROM (SELECT status, sum(entered) AS entered FROM ${s}.status_deltas
          GROUP BY status) d
        WHERE c.status = d.status;
      DELETE FROM ${s}.status_deltas;
      UPDATE ${s}.status_counts SET n = 0;
      INSERT INTO ${s}.status_counts (queue, status, n, entered)
        SELECT queue, status, count(*), 0 FROM ${s}.tasks
        GROUP BY queue, status
        ON CONFLICT (queue, status) DO UPDATE SET n = excluded.n;
      DELETE FROM ${s}.status_counts WHERE n = 0 AND entered = 0;
      DROP INDEX ${s}.tasks_succeeded_updated;
      DROP INDEX ${s}.tasks_dead_updated;
      CREATE INDEX tasks_succeeded_updated
        ON ${s}.tasks (queue, updated_at, seq) WHERE status = 'succeeded';
      CREATE INDEX tasks_dead_updated
        ON ${s}.tasks (queue, updated_at, seq) WHERE status = 'dead';
    `,
  },
];

/** The newest schema version this code knows: the last migration's. */
export const POSTGRES_SCHEMA_VERSION: number =
  POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Checks a schema name: lower-case letters, digits and `_`, not starting
 * with a digit, at most 63 characters (PostgreSQL's identifier limit).
 *
 * @param schema The name.
 * @returns The name quoted as an SQL identifier.
 * @throws {TypeError} When it is not a string.
 * @throws {RangeError} When it is not a plain lower-case identifier.
 */
export function validateSchemaName(schema: unknown): string {
  if (typeof schema !== "string") {
    throw new TypeError(
      `Cannot open task store: schema must be a string, got ${typeof schema}`,
    );
  }
  if (!SCHEMA_NAME.test(schema)) {
    throw new RangeError(
      `Cannot open task store: schema must match ${SCHEMA_NAME.source}, got ${
        JSON.stringify(schema)
      }`,
    );
  }
  return `"${schema}"`;
}

/** Columns every read returns, in `TaskRecord` order plus `seq`. */
const COLUMNS =
  "id, seq, type, queue, priority, idempotency_key, payload, status, attempts, " +
  "max_attempts, run_at, lease_until, started_at, created_at, updated_at, " +
  "dedupe_until, output_key, result, last_error, error_class, version, " +
  "progress, checkpoint";

/**
 * The statements that change task statuses, each reporting its moves to
 * the transaction's `count` statement through a setting of its own.
 */
const MOVE_SLOTS = [
  "insert",
  "claim",
  "settle",
  "release",
  "recover",
  "requeue",
  "prune",
  "cancel",
  "remove",
] as const;

/**
 * A CTE named `moved` that reports the moves of `rows` (a query with text
 * columns `queue`, `was` and `became`, the last two null for an insert or
 * a delete) as JSON `[was, became, count, queue]` arrays in the
 * transaction-local setting
 * `sluice.moves_<slot>`, where the transaction's `count` statement reads
 * them. A transaction's settings end with it, so a later transaction on
 * the connection finds none, and a re-sent one (after a deadlock) starts
 * afresh. The statement must use the CTE ({@linkcode MOVED} in its final
 * `WHERE`), which runs it once, whether or not any row moved.
 */
function reportMoves(slot: typeof MOVE_SLOTS[number], rows: string): string {
  return `moved AS MATERIALIZED (
        SELECT set_config('sluice.moves_${slot}', coalesce((
          SELECT json_agg(json_build_array(was, became, k, queue))::text
          FROM (SELECT queue, was, became, count(*) AS k FROM (${rows}) m
            GROUP BY queue, was, became) g), '[]'), true) AS ok
      )`;
}

/**
 * The condition that runs a statement's `moved` CTE: an uncorrelated
 * subquery, evaluated once as the final query's one-time filter, always
 * true.
 */
const MOVED = "(SELECT ok FROM moved) IS NOT NULL";

/** The statements of the PostgreSQL task store. */
export interface PostgresQueries {
  /** Creates the schema and the migrations table if missing. */
  bootstrap: string;
  /**
   * For a read-only open, which never creates anything: whether the
   * schema `$1` (its name, unquoted) holds the `tasks` and `migrations`
   * tables.
   */
  inspect: string;
  /** Takes the migration lock for the rest of the transaction. */
  migrationLock: string;
  /** The newest applied version, or null. */
  schemaVersion: string;
  /** Records one applied step: `$1` version, `$2` description. */
  recordMigration: string;
  /**
   * Extends the leases in `$1` (JSON array of `{id, v}`) to `$2` (lease
   * end) where the version still matches. Returns `id, v` of each renewed
   * row.
   */
  renew: string;
  /**
   * Charges `n` attempts for each `{id, v, n}` in `$1` (one row per
   * distinct pair, `n` the starts it had) where the version still matches,
   * and records `$2` (now) as its start. Returns `id, v` of each row
   * charged.
   */
  start: string;
  /**
   * Records the progress values in `$1` (JSON array of `{id, v, j}`, `j`
   * the value or null; one row per distinct pair) where the version still
   * matches. Returns `id, v` of each row written.
   */
  progress: string;
  /** Like `progress`, for checkpoints. */
  checkpoint: string;
  /**
   * Applies the settles in `$1` (JSON array of
   * `{id, v, k, c, sa, r, ok, ra, e, ec}`, `c` the charge, `sa` the start
   * estimate or null) at `$2` (now), fenced by version, and adds the
   * refused ones to the stale counter given `$3` (how many settles the
   * batch held). Returns the `(id, v)` pairs settled.
   */
  settle: string;
  /**
   * Hands back the tasks in `$1` (JSON array of `{id, v, rf}`, `rf` the
   * refund) at `$2` (now), fenced by version. Returns `id, v` of each row
   * released.
   */
  release: string;
  /**
   * Inserts the tasks in `$1` (JSON array) at `$2` (now), skipping
   * duplicate idempotency keys, in key order. Returns the ids inserted
   * (`row` null) and the rows that already held one of the keys (`row` as
   * JSON).
   */
  insert: string;
  /**
   * Takes the keys in `$1` (JSON array of strings) from the rows holding
   * them whose window ended before `$2` (now): their `idempotency_key`
   * becomes NULL. Locks those rows in key order first. Runs before
   * `insert` in the same transaction, so the insert takes the keys over.
   * Returns `n`, the keys released.
   */
  releaseKeys: string;
  /** Rows whose idempotency key is in `$1` (JSON array of strings). */
  byKeys: string;
  /** Claims up to `$3` due tasks at `$1` (now) until `$2` (lease end). */
  claimDue: string;
  /**
   * Appends the net change to the counts that the transaction's earlier
   * statements reported (their moves) to `status_deltas`, as one row per
   * status changed. Ends every transaction that changes a status. Returns
   * `n`, the rows appended.
   */
  count: string;
  /** Sends the wake-up notification with payload `$1`. */
  notify: string;
  /**
   * Requeues or dead-letters expired leases at `$1` with message `$2`;
   * notifies (`$3`) with payload `$4` when any was requeued. Returns `n`.
   */
  recoverExpired: string;
  /** One task by id `$1`. */
  byId: string;
  /** One task by key `$1`. */
  byKey: string;
  /** Tasks in insertion order; `$1` limit (null: all), `$2` offset. */
  listAll: string;
  /** Tasks with status `$1`; `$2` limit, `$3` offset. */
  listByStatus: string;
  /** Lists one queue's tasks, optionally of one status. */
  listByQueue: string;
  /** Cancels tasks by id. */
  cancel: string;
  /** Deletes tasks by id unless running. */
  remove: string;
  /** Pauses or resumes a queue. */
  setPaused: string;
  /** Reads the stored queue states. */
  queueStates: string;
  /** Requeues the dead ids in `$1` (JSON array) at `$2`; notifies like recoverExpired (`$3`, `$4`). */
  requeueIds: string;
  /** Requeues every dead task at `$1`; notifies (`$2`, `$3`). */
  requeueAll: string;
  /**
   * Counts and totals (`counts`: JSON object of status, and `submitted`,
   * to `[n, entered]`), the oldest due `run_at` at `$1`, the failed tasks
   * due at `$1` (`due_failed`), and running tasks with a recorded start,
   * in one snapshot.
   */
  status: string;
  /**
   * Takes the fold lock, waiting for it, for the rest of the transaction:
   * sent before `recount`.
   */
  foldLock: string;
  /**
   * Recomputes the counts from the rows, and folds the deltas' totals, in
   * one snapshot. Returns `n`, the count rows written.
   */
  recount: string;
  /**
   * Deletes at most `$1` finished rows the policy lets go, oldest
   * `(updated_at, seq)` first: `$2`/`$3` the succeeded count kept and
   * cutoff, `$4`/`$5` the dead ones (a huge count and a very early cutoff
   * stand for no limit), if it gets the prune lock. Returns `locked` and
   * the rows deleted per status.
   */
  prune: string;
  /**
   * Folds the count deltas this snapshot sees into `status_counts`, if it
   * gets the fold lock. Returns `folded` (whether it had the lock).
   */
  fold: string;
  /**
   * What pruning to completion would delete: `$1`/`$2` and `$3`/`$4` as in
   * `prune`. Returns `succeeded` and `dead`.
   */
  prunable: string;
  /** The stale settle counter. */
  staleSettles: string;
}

/**
 * The statements for one schema.
 *
 * @param schema The quoted schema identifier from {@linkcode validateSchemaName}.
 * @returns The statement texts.
 */
export function postgresQueries(schema: string): PostgresQueries {
  const t = `${schema}.tasks`;
  // Counts and totals as kept: the folded rows and the pending deltas.
  const counted =
    `(SELECT queue, status, n, entered FROM ${schema}.status_counts
    UNION ALL SELECT queue, status, n, entered FROM ${schema}.status_deltas)`;
  // A lock of this schema: the class in the high half, its oid in the low.
  const lockKey = (lockClass: number): string =>
    `(${lockClass}::bigint << 32) | '${schema}'::regnamespace::oid::bigint`;
  // A CTE named `rules`: each queue holding finished rows (by the kept
  // counts), with its succeeded (s) and dead (d) counts and the rules
  // that apply to it: its own from the JSON array `named`, else the
  // policy's (sk/sb and dk/db: counts kept and cutoffs).
  const finishedRules = (
    sk: string,
    sb: string,
    dk: string,
    db: string,
    named: string,
  ): string =>
    `rules AS MATERIALIZED (
        SELECT k.queue, k.s, k.d,
          coalesce(o.sk, ${sk}::bigint) AS sk,
          coalesce(o.sb, ${sb}::bigint) AS sb,
          coalesce(o.dk, ${dk}::bigint) AS dk,
          coalesce(o.db, ${db}::bigint) AS db
        FROM (SELECT queue,
            coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS s,
            coalesce(sum(n) FILTER (WHERE status = 'dead'), 0) AS d
          FROM ${counted} u WHERE status IN ('succeeded', 'dead')
          GROUP BY queue) k
        LEFT JOIN json_to_recordset(${named}::text::json)
          AS o(q text, sk bigint, sb bigint, dk bigint, db bigint)
          ON o.q = k.queue
        WHERE k.s > 0 OR k.d > 0
      )`;
  // A claim charges no attempt and clears the previous claim's start: the
  // handler's start charges and records it.
  const claimSet =
    "status = 'running', version = t.version + 1, started_at = NULL";
  const requeueMoves = reportMoves(
    "requeue",
    "SELECT queue, 'dead' AS was, 'queued' AS became FROM r",
  );
  return {
    bootstrap: `CREATE SCHEMA IF NOT EXISTS ${schema}; ` +
      `CREATE TABLE IF NOT EXISTS ${schema}.migrations (` +
      "version integer PRIMARY KEY, description text NOT NULL, " +
      "applied_at timestamptz NOT NULL DEFAULT now())",
    // to_regclass returns NULL for a missing schema or table instead of
    // failing, so nothing here needs the schema to exist.
    inspect: "SELECT " +
      "to_regclass(quote_ident($1::text) || '.tasks') IS NOT NULL AS tasks, " +
      "to_regclass(quote_ident($1::text) || '.migrations') IS NOT NULL " +
      "AS migrations",
    migrationLock: `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`,
    schemaVersion: `SELECT max(version) AS version FROM ${schema}.migrations`,
    recordMigration:
      `INSERT INTO ${schema}.migrations (version, description) VALUES ($1, $2)`,
    // One statement for every outcome kind: each column keeps its old value
    // unless the outcome writes it, exactly as the SQLite store's three
    // statements do (started_at is kept, so a finished task shows its last
    // recorded start). The meta row is touched only when a settle was refused,
    // so commits from different processes do not queue on it.
    settle: `WITH v AS (
        SELECT * FROM json_to_recordset($1::text::json)
          AS v(id text, v integer, k text, c boolean, sa bigint, r jsonb,
            ok text, ra bigint, e text, ec text, q text)
      ), s AS (
        UPDATE ${t} t SET
          attempts = CASE WHEN v.c THEN t.attempts + 1 ELSE t.attempts END,
          started_at = coalesce(t.started_at, v.sa),
          status = CASE v.k WHEN 'succeeded' THEN 'succeeded'
            WHEN 'retry' THEN 'failed' ELSE 'dead' END,
          result = CASE WHEN v.k = 'succeeded' THEN v.r ELSE t.result END,
          output_key = CASE WHEN v.k = 'succeeded' THEN v.ok ELSE t.output_key END,
          run_at = CASE WHEN v.k = 'retry' THEN v.ra ELSE t.run_at END,
          last_error = CASE WHEN v.k = 'succeeded' THEN t.last_error ELSE v.e END,
          error_class = CASE WHEN v.k = 'succeeded' THEN t.error_class ELSE v.ec END,
          lease_until = NULL, updated_at = $2::bigint, version = t.version + 1
        FROM v
        WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
          AND (v.q IS NULL OR t.queue = v.q)
        RETURNING t.id, v.v, t.status, t.queue
      ), c AS (
        UPDATE ${schema}.meta
          SET value = value + ($3::bigint - (SELECT count(*) FROM s))
        WHERE name = 'stale_settles' AND (SELECT count(*) FROM s) < $3::bigint
      ), ${
      reportMoves(
        "settle",
        "SELECT queue, 'running' AS was, status AS became FROM s",
      )
    }
      SELECT id, v FROM s WHERE ${MOVED}`,
    renew: `UPDATE ${t} t SET lease_until = $2::bigint
      FROM json_to_recordset($1::text::json) AS v(id text, v integer)
      WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
      RETURNING t.id, v.v`,
    // The version stays, so the claim's later renewals, settle or release
    // still match. An UPDATE … FROM changes a row once however many source
    // rows match it, so duplicate starts arrive folded into `n`.
    start: `UPDATE ${t} t SET attempts = t.attempts + v.n,
        started_at = $2::bigint
      FROM json_to_recordset($1::text::json) AS v(id text, v integer, n integer)
      WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
      RETURNING t.id, v.v`,
    // Fenced like a renewal; the version stays. A requeue clears both.
    progress: `UPDATE ${t} t SET progress = v.j
      FROM json_to_recordset($1::text::json) AS v(id text, v integer, j jsonb)
      WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
      RETURNING t.id, v.v`,
    checkpoint: `UPDATE ${t} t SET checkpoint = v.j
      FROM json_to_recordset($1::text::json) AS v(id text, v integer, j jsonb)
      WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
      RETURNING t.id, v.v`,
    // run_at is kept, so the task is due again at once.
    release: `WITH r AS (
        UPDATE ${t} t SET status = 'queued', lease_until = NULL,
          started_at = NULL,
          attempts = CASE WHEN v.rf THEN greatest(t.attempts - 1, 0)
            ELSE t.attempts END,
          updated_at = $2::bigint, version = t.version + 1
        FROM json_to_recordset($1::text::json)
          AS v(id text, v integer, rf boolean, q text)
        WHERE t.id = v.id AND t.version = v.v AND t.status = 'running'
          AND (v.q IS NULL OR t.queue = v.q)
        RETURNING t.id, v.v, t.queue
      ), ${
      reportMoves(
        "release",
        "SELECT queue, 'running' AS was, 'queued' AS became FROM r",
      )
    }
      SELECT id, v FROM r WHERE ${MOVED}`,
    // Rows go in key order, so that concurrent commits with overlapping
    // keys take the key index's locks in one order and cannot deadlock;
    // ties keep array order (`o`), so of two rows with one key the first
    // wins. Rows without a key go last. `seq` (the claim order among equal
    // run_at) is still drawn in array order first: `n` is materialized
    // (nextval is volatile) from `v` sorted by `o`. A JSON null payload
    // arrives as SQL NULL and is stored as jsonb null.
    // The outer SELECT runs on the statement's snapshot, which does not
    // include the CTE's rows: it returns the rows that already held one of
    // the batch's keys (as `row`), next to the ids inserted (`row` null).
    insert: `WITH v AS (
        SELECT * FROM json_to_recordset($1::text::json)
          AS v(o integer, id text, ty text, key text, p jsonb, c boolean,
            ma integer, ra bigint, lu bigint, du bigint, q text, pr integer)
      ), n AS (
        SELECT o.*, nextval((SELECT pg_get_serial_sequence('${t}', 'seq'))::regclass) AS sq,
          o.c AND NOT EXISTS (SELECT 1 FROM ${schema}.queues
            WHERE name = o.q AND paused) AS cl
        FROM (SELECT * FROM v ORDER BY v.o) o
      ), ins AS (
        INSERT INTO ${t} (id, seq, type, idempotency_key, payload, status,
          attempts, max_attempts, run_at, lease_until, started_at, created_at,
          updated_at, version, dedupe_until, queue, priority)
        OVERRIDING SYSTEM VALUE
        SELECT n.id, n.sq, n.ty, n.key, coalesce(n.p, 'null'::jsonb),
          CASE WHEN n.cl THEN 'running' ELSE 'queued' END,
          0, n.ma, n.ra, CASE WHEN n.cl THEN n.lu END, NULL, $2::bigint,
          $2::bigint, CASE WHEN n.cl THEN 1 ELSE 0 END, n.du, n.q, n.pr
        FROM n
        ORDER BY n.key COLLATE "C", n.o
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, status, queue
      ), ${
      reportMoves(
        "insert",
        "SELECT queue, NULL::text AS was, status AS became FROM ins",
      )
    }
      SELECT id, status, NULL::json AS row FROM ins WHERE ${MOVED}
      UNION ALL
      SELECT t.id, NULL, row_to_json(t) AS row FROM ${t} t
      WHERE t.idempotency_key IN (SELECT key FROM v WHERE key IS NOT NULL)`,
    // Only rows whose window has passed are locked and changed; a key
    // still deduplicating is read by the insert's conflict check alone.
    // Locks are taken in key order, like the insert's. A row whose key a
    // concurrent commit takes first is re-checked once that commit ends
    // (its key is then NULL) and skipped; that commit's new row then
    // deduplicates this insert.
    // Returns a row (the count) like every statement of a commit: the
    // client leaves a row-less statement's result out of a multi-statement
    // reply, which would shift the later results.
    releaseKeys: `WITH r AS (
        UPDATE ${t} t SET idempotency_key = NULL
        WHERE t.id IN (
          SELECT id FROM ${t}
          WHERE idempotency_key IN (SELECT json_array_elements_text($1::text::json))
            AND dedupe_until < $2::bigint
          ORDER BY idempotency_key COLLATE "C"
          FOR UPDATE)
        RETURNING 1
      )
      SELECT count(*) AS n FROM r`,
    byKeys: `SELECT ${COLUMNS} FROM ${t} WHERE idempotency_key IN ` +
      "(SELECT json_array_elements_text($1::text::json))",
    // The rows are picked with their status (queued or failed), which the
    // UPDATE returns next to the new row for the counts.
    // Each queue of the claim ($4: [{q, n}]) that is not paused gives its
    // first n due rows in claim order, read through tasks_claim (no sort)
    // and locked, skipping rows other claimers hold; the first $3 of them
    // in claim order are claimed. $5 (a JSON array, or null for any)
    // limits the task types. Candidates of several queues beyond $3 stay
    // locked only until the commit. The rows are picked with their status
    // (queued or failed), which the UPDATE returns next to the new row for
    // the counts.
    claimDue: `WITH picked AS MATERIALIZED (
        SELECT x.id, x.status FROM json_to_recordset($4::text::json)
          AS q(q text, n bigint)
        CROSS JOIN LATERAL (
          SELECT id, status, priority, run_at, seq FROM ${t}
          WHERE queue = q.q AND status IN ('queued', 'failed')
            AND run_at <= $1::bigint
            AND ($5::text IS NULL
              OR type IN (SELECT json_array_elements_text($5::text::json)))
          ORDER BY priority DESC, run_at, seq
          LIMIT q.n
          FOR UPDATE SKIP LOCKED
        ) x
        WHERE NOT EXISTS (SELECT 1 FROM ${schema}.queues
          WHERE name = q.q AND paused)
        ORDER BY x.priority DESC, x.run_at, x.seq
        LIMIT $3::bigint
      ), c AS (
        UPDATE ${t} t SET ${claimSet},
          lease_until = $2::bigint, updated_at = $1::bigint
        FROM picked p
        WHERE t.id = p.id
        RETURNING ${COLUMNS.replaceAll(/(\w+)/g, "t.$1")}, p.status AS was
      ), ${
      reportMoves("claim", "SELECT queue, was, 'running' AS became FROM c")
    }
      SELECT ${COLUMNS} FROM c WHERE ${MOVED}`,
    // Each move [was, became, k] takes k from was and adds k to became
    // (and to its total when it is finished); a move from null (an
    // insert) adds k to the submitted total. Statuses whose changes cancel
    // out append nothing, and a transaction whose statements moved nothing
    // appends no row. The settings of statements not sent read as null.
    count: `WITH m AS (
        SELECT e->>0 AS was, e->>1 AS became, (e->>2)::bigint AS k,
          e->>3 AS queue
        FROM unnest(ARRAY[${
      MOVE_SLOTS.map((slot) => `'sluice.moves_${slot}'`).join(", ")
    }]) AS g(slot)
        CROSS JOIN LATERAL json_array_elements(
          coalesce(nullif(current_setting(g.slot, true), ''), '[]')::json) e
      ), d AS (
        SELECT m.queue, x.status, sum(x.n) AS n, sum(x.entered) AS entered
        FROM m CROSS JOIN LATERAL (VALUES
          (m.was, -m.k, 0::bigint),
          (m.became, m.k,
            CASE WHEN m.became IN ('succeeded', 'dead') THEN m.k ELSE 0 END),
          (CASE WHEN m.was IS NULL THEN 'submitted' END, 0::bigint, m.k)
        ) AS x(status, n, entered)
        WHERE x.status IS NOT NULL
        GROUP BY m.queue, x.status
      ), ins AS (
        INSERT INTO ${schema}.status_deltas (queue, status, n, entered)
        SELECT queue, status, n, entered FROM d WHERE n <> 0 OR entered <> 0
        RETURNING 1
      )
      SELECT count(*) AS n FROM ins`,
    notify: `SELECT pg_notify('${NOTIFY_CHANNEL}', $1::text)`,
    // Rows a settle holds are skipped, not waited for: their owner is
    // settling them, and a later pass recovers whatever is still expired.
    // The NOTIFY goes out on commit when any task went back to the queue.
    recoverExpired: `WITH r AS (
        UPDATE ${t} t SET
          status = CASE WHEN t.attempts >= t.max_attempts THEN 'dead'
            ELSE 'queued' END,
          last_error = CASE WHEN t.attempts >= t.max_attempts THEN $2::text
            ELSE t.last_error END,
          error_class = CASE WHEN t.attempts >= t.max_attempts THEN 'transient'
            ELSE t.error_class END,
          lease_until = NULL, started_at = NULL, updated_at = $1::bigint,
          version = t.version + 1
        WHERE t.id IN (
          SELECT id FROM ${t}
          WHERE status = 'running' AND lease_until < $1::bigint
          FOR UPDATE SKIP LOCKED)
        RETURNING t.status, t.queue
      ), ${
      reportMoves(
        "recover",
        "SELECT queue, 'running' AS was, status AS became FROM r",
      )
    }
      SELECT count(*) AS n,
        CASE WHEN $3::boolean AND bool_or(status = 'queued')
          THEN pg_notify('${NOTIFY_CHANNEL}', $4::text) END AS notified
      FROM r WHERE ${MOVED}`,
    byId: `SELECT ${COLUMNS} FROM ${t} WHERE id = $1::text`,
    byKey: `SELECT ${COLUMNS} FROM ${t} WHERE idempotency_key = $1::text`,
    listAll: `SELECT ${COLUMNS} FROM ${t} ORDER BY created_at, seq ` +
      "LIMIT $1::bigint OFFSET $2::bigint",
    listByStatus: `SELECT ${COLUMNS} FROM ${t} WHERE status = $1::text ` +
      "ORDER BY created_at, seq LIMIT $2::bigint OFFSET $3::bigint",
    listByQueue: `SELECT ${COLUMNS} FROM ${t} WHERE queue = $1::text ` +
      "AND ($2::text IS NULL OR status = $2::text) " +
      "ORDER BY created_at, seq LIMIT $3::bigint OFFSET $4::bigint",
    // Cancels the ids of $1 (a JSON array): any unfinished status to dead
    // with a new version, so a running claim is fenced off. Returns each
    // id found with its status before.
    cancel: `WITH f AS (
        SELECT id, status, queue FROM ${t}
        WHERE id IN (SELECT json_array_elements_text($1::text::json))
        ORDER BY id COLLATE "C"
        FOR UPDATE
      ), r AS (
        UPDATE ${t} t SET status = 'dead', last_error = $3::text,
          error_class = 'permanent', lease_until = NULL,
          updated_at = $2::bigint, version = t.version + 1
        FROM f
        WHERE t.id = f.id AND f.status IN ('queued', 'failed', 'running')
        RETURNING t.id
      ), ${
      reportMoves(
        "cancel",
        "SELECT f.queue, f.status AS was, 'dead' AS became " +
          "FROM f JOIN r USING (id)",
      )
    }
      SELECT f.id, f.status FROM f WHERE ${MOVED}`,
    // Deletes the ids of $1 that are not running; returns each id found
    // with its status before.
    remove: `WITH f AS (
        SELECT id, status, queue FROM ${t}
        WHERE id IN (SELECT json_array_elements_text($1::text::json))
        ORDER BY id COLLATE "C"
        FOR UPDATE
      ), r AS (
        DELETE FROM ${t} t USING f
        WHERE t.id = f.id AND f.status <> 'running'
        RETURNING t.id
      ), ${
      reportMoves(
        "remove",
        "SELECT f.queue, f.status AS was, NULL::text AS became " +
          "FROM f JOIN r USING (id)",
      )
    }
      SELECT f.id, f.status FROM f WHERE ${MOVED}`,
    setPaused: `INSERT INTO ${schema}.queues (name, paused, updated_at)
      VALUES ($1::text, $2::boolean, $3::bigint)
      ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
        updated_at = excluded.updated_at
      RETURNING name`,
    queueStates: `SELECT name, paused, updated_at FROM ${schema}.queues
      ORDER BY name COLLATE "C"`,
    requeueIds: `WITH r AS (
        UPDATE ${t} SET status = 'queued', attempts = 0,
          run_at = $2::bigint, lease_until = NULL, started_at = NULL,
          progress = NULL, checkpoint = NULL,
          updated_at = $2::bigint, version = version + 1
        WHERE id IN (SELECT json_array_elements_text($1::text::json))
          AND status = 'dead'
        RETURNING id, queue
      ), ${requeueMoves}
      SELECT count(*) AS n,
        CASE WHEN $3::boolean AND count(*) > 0
          THEN pg_notify('${NOTIFY_CHANNEL}', $4::text) END AS notified
      FROM r WHERE ${MOVED}`,
    requeueAll: `WITH r AS (
        UPDATE ${t} SET status = 'queued', attempts = 0,
          run_at = $1::bigint, lease_until = NULL, started_at = NULL,
          progress = NULL, checkpoint = NULL,
          updated_at = $1::bigint, version = version + 1
        WHERE status = 'dead'
        RETURNING id, queue
      ), ${requeueMoves}
      SELECT count(*) AS n,
        CASE WHEN $2::boolean AND count(*) > 0
          THEN pg_notify('${NOTIFY_CHANNEL}', $3::text) END AS notified
      FROM r WHERE ${MOVED}`,
    // One statement, so the four reads see one snapshot. Counts and
    // totals: six rows plus the deltas not yet folded (a few per recent
    // commit), never the tasks. The oldest due run_at is the first entry
    // of tasks_due; the due failed tasks are the due prefix of
    // tasks_failed_due (failed rows only). The started count's
    // status = 'running' is served by tasks_lease (its predicate) or
    // tasks_status_created (its first column), so it reads the running
    // rows, never the finished ones.
    status: `SELECT
        (SELECT coalesce(json_agg(json_build_array(queue, status, n, entered)),
            '[]'::json)
          FROM (SELECT queue, status, sum(n) AS n, sum(entered) AS entered
            FROM ${counted} u GROUP BY queue, status) c) AS counts,
        (SELECT min(run_at) FROM ${t}
          WHERE status IN ('queued', 'failed') AND run_at <= $1::bigint) AS oldest,
        (SELECT count(*) FROM ${t}
          WHERE status = 'failed' AND run_at <= $1::bigint) AS due_failed,
        (SELECT count(*) FROM ${t}
          WHERE status = 'running' AND started_at IS NOT NULL) AS started`,
    foldLock: `SELECT pg_advisory_xact_lock(${
      lockKey(FOLD_LOCK_CLASS)
    }) IS NULL AS locked`,
    // One statement, so the rows counted and the deltas deleted are of one
    // snapshot: a delta committed later (its rows not counted here) stays,
    // and is folded on top. The caller holds the fold lock, so no fold
    // deletes deltas meanwhile. The totals keep their history and take
    // the deleted deltas' share.
    recount: `WITH gone AS (
        DELETE FROM ${schema}.status_deltas RETURNING queue, status, entered
      ), pending AS (
        SELECT queue, status, sum(entered) AS entered FROM gone
        GROUP BY queue, status
      ), r AS (
        SELECT queue, status, count(*) AS n FROM ${t} GROUP BY queue, status
      ), u AS (
        INSERT INTO ${schema}.status_counts AS c (queue, status, n, entered)
        SELECT coalesce(r.queue, p.queue), coalesce(r.status, p.status),
          coalesce(r.n, 0), coalesce(p.entered, 0)
        FROM r FULL JOIN pending p
          ON p.queue = r.queue AND p.status = r.status
        ON CONFLICT (queue, status) DO UPDATE
          SET n = excluded.n, entered = c.entered + excluded.entered
        RETURNING 1
      ), z AS (
        UPDATE ${schema}.status_counts c SET n = 0
        WHERE n <> 0
          AND NOT EXISTS (SELECT 1 FROM r
            WHERE r.queue = c.queue AND r.status = c.status)
          AND NOT EXISTS (SELECT 1 FROM pending p
            WHERE p.queue = c.queue AND p.status = c.status)
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM z) AS n`,
    // Each queue holding finished rows has its rules: its own from $6 (a
    // JSON array of {q, sk, sb, dk, db}: the succeeded and dead counts
    // kept and cutoffs), else $2/$3 and $4/$5 (a huge count and a very
    // early cutoff stand for no limit). Each queue's candidates of a
    // status are two prefixes of its range of the status's (queue,
    // updated_at, seq) index: the first e rows (e = the rows beyond the
    // count kept, at most the limit), then the rows after them finished
    // before the cutoff; their union is what the rule lets go. The second
    // part's OFFSET is e only when e is below the limit, so no part reads
    // more than the limit's worth of index entries. The chosen ids reach
    // the tasks as an array (= ANY), which the primary key serves whatever
    // the planner guesses of the LIMIT. Rows a transaction holds (a
    // requeue) are skipped, and the status is re-checked on the locked
    // row. Without the prune lock the limit is 0: nothing is read or
    // deleted.
    prune: `WITH lock AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock(${lockKey(PRUNE_LOCK_CLASS)}) AS ok
      ), lim AS MATERIALIZED (
        SELECT CASE WHEN ok THEN $1::bigint ELSE 0 END AS n FROM lock
      ), ${finishedRules("$2", "$3", "$4", "$5", "$6")}, e AS MATERIALIZED (
        SELECT r.queue, r.sb, r.db,
          least((SELECT n FROM lim), greatest(r.s - r.sk, 0)) AS s,
          least((SELECT n FROM lim), greatest(r.d - r.dk, 0)) AS d
        FROM rules r
      ), candidates AS (
        SELECT c.* FROM e CROSS JOIN LATERAL (
          (SELECT id, updated_at, seq FROM ${t}
            WHERE queue = e.queue AND status = 'succeeded'
            ORDER BY updated_at, seq LIMIT e.s)
          UNION ALL
          (SELECT id, updated_at, seq FROM ${t}
            WHERE queue = e.queue AND status = 'succeeded'
              AND updated_at < e.sb
            ORDER BY updated_at, seq
            LIMIT (SELECT n FROM lim) - e.s
            OFFSET e.s)
          UNION ALL
          (SELECT id, updated_at, seq FROM ${t}
            WHERE queue = e.queue AND status = 'dead'
            ORDER BY updated_at, seq LIMIT e.d)
          UNION ALL
          (SELECT id, updated_at, seq FROM ${t}
            WHERE queue = e.queue AND status = 'dead' AND updated_at < e.db
            ORDER BY updated_at, seq
            LIMIT (SELECT n FROM lim) - e.d
            OFFSET e.d)
        ) c
      ), pick AS (
        SELECT id FROM ${t}
        WHERE id = ANY (ARRAY(SELECT id FROM candidates
            ORDER BY updated_at, seq LIMIT (SELECT n FROM lim)))
          AND status IN ('succeeded', 'dead')
        FOR UPDATE SKIP LOCKED
      ), gone AS (
        DELETE FROM ${t} t
        WHERE t.id = ANY (ARRAY(SELECT id FROM pick))
          AND t.status IN ('succeeded', 'dead')
        RETURNING t.status, t.queue
      ), ${
      reportMoves(
        "prune",
        "SELECT queue, status AS was, NULL::text AS became FROM gone",
      )
    }
      SELECT (SELECT ok FROM lock) AS locked,
        count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE status = 'dead') AS dead
      FROM gone WHERE ${MOVED}`,
    // Deletes the deltas this statement's snapshot sees and adds them to
    // the five rows, in one statement; a delta committed meanwhile stays
    // for the next fold. A second folder skips (the lock); one that took
    // the lock after a fold committed finds those deltas already gone
    // (READ COMMITTED re-checks the rows) and adds to the new row values.
    fold: `WITH lock AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock(${lockKey(FOLD_LOCK_CLASS)}) AS ok
      ), gone AS (
        DELETE FROM ${schema}.status_deltas WHERE (SELECT ok FROM lock)
        RETURNING queue, status, n, entered
      ), sums AS (
        SELECT queue, status, sum(n) AS n, sum(entered) AS entered
        FROM gone GROUP BY queue, status
      ), folded AS (
        INSERT INTO ${schema}.status_counts AS c (queue, status, n, entered)
        SELECT queue, status, n, entered FROM sums
        ON CONFLICT (queue, status) DO UPDATE
          SET n = c.n + excluded.n, entered = c.entered + excluded.entered
        RETURNING c.status
      )
      SELECT (SELECT ok FROM lock) AS folded,
        (SELECT count(*) FROM folded) AS statuses`,
    // Per queue and status, the rows beyond the count kept (from the kept
    // counts), or those finished before the cutoff (counted in the
    // queue's range of the status's index), whichever is more; $1 to $5
    // are the rules as in prune's $2 to $6.
    prunable: `WITH ${finishedRules("$1", "$2", "$3", "$4", "$5")}
      SELECT
        coalesce(sum(greatest(r.s - r.sk, (SELECT count(*) FROM ${t}
          WHERE queue = r.queue AND status = 'succeeded'
            AND updated_at < r.sb), 0)), 0)::bigint AS succeeded,
        coalesce(sum(greatest(r.d - r.dk, (SELECT count(*) FROM ${t}
          WHERE queue = r.queue AND status = 'dead'
            AND updated_at < r.db), 0)), 0)::bigint AS dead
      FROM rules r`,
    staleSettles:
      `SELECT value FROM ${schema}.meta WHERE name = 'stale_settles'`,
  };
}
