import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { openStore } from "../../../lib/store/open_store.ts";
import {
  PostgresTaskStore,
  type PostgresTaskStoreOptions,
} from "../../../lib/store/postgres/postgres_store.ts";
import {
  POSTGRES_MIGRATIONS,
  POSTGRES_SCHEMA_VERSION,
  postgresQueries,
  PRUNE_LOCK_CLASS,
} from "../../../lib/store/postgres/schema.ts";
import { mulberry32 } from "../../../lib/_rng.ts";
import type {
  InsertOutcome,
  NewTask,
  StatusCounts,
  TaskRecord,
  TaskStatus,
} from "../../../lib/store/store.ts";
import { waitFor, withDeadline } from "../../_helpers.ts";
import {
  batch,
  checkCountsByQueueMigrated,
  checkSeededCounts,
  type ConformanceStore,
  storeConformance,
  T0,
  task,
} from "../conformance.ts";

// The suite runs against a real server named by SLUICE_TEST_PG (for
// example postgres://postgres@127.0.0.1:5432/test); without it every case
// is registered as ignored. Each case works in its own schema and drops it.
const PG = Deno.env.get("SLUICE_TEST_PG");
const ignore = PG === undefined;

function freshSchema(): string {
  return `sluice_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** A raw connection for checks the store does not expose; closed on dispose. */
function admin(): postgres.Sql & AsyncDisposable {
  const sql = postgres(PG!, { max: 1, onnotice: () => {} });
  return Object.assign(sql, {
    [Symbol.asyncDispose]: (): Promise<void> => sql.end({ timeout: 5 }),
  });
}

/** One schema and the stores opened on it; dispose closes them and drops it. */
interface Fixture extends AsyncDisposable {
  schema: string;
  open(options?: PostgresTaskStoreOptions): Promise<PostgresTaskStore>;
}

function fixture(): Fixture {
  const schema = freshSchema();
  const stores: PostgresTaskStore[] = [];
  return {
    schema,
    async open(options = {}): Promise<PostgresTaskStore> {
      const store = await PostgresTaskStore.open(PG!, {
        schema,
        max: 2,
        ...options,
      });
      stores.push(store);
      return store;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await Promise.all(stores.map((store) => store.close()));
      await PostgresTaskStore.drop(PG!, { schema });
    },
  };
}

/**
 * Creates the fixture's schema at `version`, as a Sluice of that version
 * left it (the first `version` migrations applied and recorded), and
 * returns an admin connection to fill it; dispose it before opening a
 * store.
 */
async function schemaAt(
  fx: Fixture,
  version: number,
): Promise<postgres.Sql & AsyncDisposable> {
  const quoted = `"${fx.schema}"`;
  const q = postgresQueries(quoted);
  const sql = admin();
  await sql.unsafe(q.bootstrap).simple();
  for (const step of POSTGRES_MIGRATIONS.slice(0, version)) {
    await sql.unsafe(step.sql(quoted)).simple();
    await sql.unsafe(q.recordMigration, [step.version, step.description]);
  }
  return sql;
}

/**
 * The real store, with `close()` also dropping its schema: the conformance
 * suite only closes what it opens.
 */
async function openConformanceStore(): Promise<ConformanceStore> {
  const schema = freshSchema();
  const store = await PostgresTaskStore.open(PG!, { schema, max: 2 });
  let closing: Promise<void> | null = null;
  return {
    kind: store.kind,
    durable: store.durable,
    checkValue: (value, what) => store.checkValue(value, what),
    commit: (b) => store.commit(b),
    insertAll: (batches, options) => store.insertAll(batches, options),
    recoverExpired: (now) => store.recoverExpired(now),
    get: (id) => store.get(id),
    getByKey: (key) => store.getByKey(key),
    list: (options) => store.list(options),
    requeue: (ids, now) => store.requeue(ids, now),
    status: (now) => store.status(now),
    recount: () => store.recount(),
    prune: (policy, now, limit) => store.prune(policy, now, limit),
    prunable: (policy, now) => store.prunable(policy, now),
    cancel: (ids, now) => store.cancel(ids, now),
    remove: (ids) => store.remove(ids),
    setPaused: (queue, paused, now) => store.setPaused(queue, paused, now),
    queueStates: () => store.queueStates(),
    putSchedule: (schedule, now) => store.putSchedule(schedule, now),
    deleteSchedule: (name) => store.deleteSchedule(name),
    listSchedules: () => store.listSchedules(),
    fireSchedule: (fire) => store.fireSchedule(fire),
    close: () =>
      closing ??= store.close().then(() =>
        PostgresTaskStore.drop(PG!, { schema })
      ),
  };
}

if (ignore) {
  Deno.test({
    name: "[postgres] conformance suite (set SLUICE_TEST_PG to run)",
    ignore: true,
    fn: () => {},
  });
} else {
  storeConformance("postgres", openConformanceStore);
}

Deno.test("PostgresTaskStore.open() rejects bad options before connecting", async () => {
  const url = "postgres://nobody@127.0.0.1:1/none";
  await assert.rejects(
    PostgresTaskStore.open(url, { max: 0 }),
    (error: Error) =>
      error instanceof RangeError && /max must be .* got 0/.test(error.message),
  );
  await assert.rejects(
    PostgresTaskStore.open(url, { max: "2" as unknown as number }),
    TypeError,
  );
  await assert.rejects(
    PostgresTaskStore.open(url, { schema: "Bad-Name" }),
    (error: Error) =>
      error instanceof RangeError && /schema .*"Bad-Name"/.test(error.message),
  );
  await assert.rejects(
    PostgresTaskStore.open(url, { notify: 1 as unknown as boolean }),
    TypeError,
  );
  await assert.rejects(PostgresTaskStore.open("mysql://x/y"), RangeError);
});

Deno.test({
  name: "openStore() opens PostgreSQL when given a postgres:// URL",
  ignore,
  async fn(): Promise<void> {
    const schema = freshSchema();
    const store = await openStore(PG!, { postgres: { schema, max: 1 } });
    try {
      assert.equal(store.kind, "postgres");
      assert.equal(store.durable, true);
      assert.ok(store instanceof PostgresTaskStore);
    } finally {
      await store.close();
      await PostgresTaskStore.drop(PG!, { schema });
    }
    const sqlite = await openStore(":memory:");
    assert.match(sqlite.kind, /^sqlite-/);
    await sqlite.close();
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() claims every task exactly once when two stores claim in parallel",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const a = await fx.open({ max: 3 });
    const b = await fx.open({ max: 3 });
    await a.commit(batch({
      inserts: Array.from({ length: 200 }, (_, i) => task(`t${i}`)),
    }));
    // Four claimers (two per store), each taking small batches until the
    // store hands out nothing; SKIP LOCKED lets them pass each other.
    const claimer = async (store: PostgresTaskStore): Promise<string[]> => {
      const mine: string[] = [];
      for (;;) {
        const { claimed } = await store.commit(
          batch({ claimDue: 7, now: T0 + 1 }),
        );
        if (claimed.length === 0) return mine;
        for (const record of claimed) {
          assert.equal(record.status, "running");
          assert.equal(record.attempts, 0);
          mine.push(record.id);
        }
      }
    };
    const results = await withDeadline(
      Promise.all([claimer(a), claimer(b), claimer(a), claimer(b)]),
      20_000,
      "parallel claims",
    );
    const all = results.flat();
    assert.equal(all.length, 200);
    assert.equal(new Set(all).size, 200);
    const status = await a.status(T0 + 1);
    assert.equal(status.counts.running, 200);
    assert.equal(status.counts.queued, 0);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() applies migrations once when four stores open at the same time",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => fx.open({ max: 1 })),
    );
    assert.deepEqual(
      stores.map((store) => store.migrationsApplied).sort(),
      [0, 0, 0, POSTGRES_MIGRATIONS.length],
    );
    await using sql = admin();
    const rows = await sql.unsafe(
      `SELECT version FROM "${fx.schema}".migrations ORDER BY version`,
    );
    assert.deepEqual(
      rows.map((row) => row["version"]),
      POSTGRES_MIGRATIONS.map((step) => step.version),
    );
    const reopened = await fx.open();
    assert.equal(reopened.migrationsApplied, 0);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() migrates a version 1 schema and keeps its tasks, with no start recorded, and refuses it read-only",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const quoted = `"${fx.schema}"`;
    {
      await using sql = await schemaAt(fx, 1);
      const insertRow = `INSERT INTO ${quoted}.tasks (id, type,
          idempotency_key, payload, status, attempts, max_attempts, run_at,
          lease_until, created_at, updated_at, result, version)
        VALUES ($1, 'noop', $2, '{"n":1}', $3, $4, 3, $5, $6, 1, 1, $7::text::jsonb, $8)`;
      await sql.unsafe(insertRow, [
        "done",
        "k-done",
        "succeeded",
        1,
        1,
        null,
        "[7]",
        2,
      ]);
      await sql.unsafe(insertRow, [
        "held",
        "k-held",
        "running",
        1,
        T0,
        T0 + 100,
        null,
        3,
      ]);
    }
    await assert.rejects(fx.open({ readonly: true }), {
      message:
        `Cannot open task store read-only: schema ${fx.schema} has version 1, older than ${POSTGRES_SCHEMA_VERSION}, and cannot be migrated read-only`,
    });
    const store = await fx.open();
    assert.equal(store.migrationsApplied, POSTGRES_MIGRATIONS.length - 1);
    const done = await store.getByKey("k-done");
    assert.deepEqual(
      [done?.status, done?.payload, done?.result, done?.startedAt],
      ["succeeded", { n: 1 }, [7], null],
    );
    const held = await store.get("held");
    assert.deepEqual(
      [held?.status, held?.leaseUntil, held?.startedAt],
      ["running", T0 + 100, null],
    );
    assert.equal((await store.status(T0)).started, 0);
    const { started } = await store.commit(batch({
      now: T0 + 5,
      starts: [{ id: "held", version: 3 }],
    }));
    assert.deepEqual(started, [true]);
    assert.equal((await store.get("held"))?.startedAt, T0 + 5);
    assert.equal((await store.status(T0 + 5)).started, 1);
    const reader = await fx.open({ readonly: true });
    assert.equal((await reader.status(T0 + 5)).started, 1);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() migrates a version 7 schema to counts by queue, keeping the totals and recounting the rows of each queue",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const quoted = `"${fx.schema}"`;
    {
      await using sql = await schemaAt(fx, 7);
      await sql.unsafe(
        `INSERT INTO ${quoted}.tasks (id, type, payload, status, attempts,
          max_attempts, run_at, created_at, updated_at, version, queue)
        VALUES ('a1', 'noop', 'null', 'succeeded', 1, 3, 0, 1, ${
          T0 + 1
        }, 1, 'a'),
          ('a2', 'noop', 'null', 'succeeded', 1, 3, 0, 1, ${T0 + 2}, 1, 'a'),
          ('a3', 'noop', 'null', 'queued', 1, 3, 0, 1, ${T0}, 1, 'a'),
          ('d1', 'noop', 'null', 'succeeded', 1, 3, 0, 1, ${
          T0 + 3
        }, 1, 'default'),
          ('d2', 'noop', 'null', 'dead', 1, 3, 0, 1, ${T0 + 4}, 1, 'default')`,
      );
      // The history: more finished and submitted than the rows left, part
      // of it in deltas not yet folded.
      await sql.unsafe(
        `UPDATE ${quoted}.status_counts SET entered = CASE status
          WHEN 'succeeded' THEN 8 WHEN 'dead' THEN 3
          WHEN 'submitted' THEN 20 ELSE entered END`,
      );
      await sql.unsafe(
        `INSERT INTO ${quoted}.status_deltas (status, n, entered)
        VALUES ('succeeded', 1, 2)`,
      );
    }
    const store = await fx.open();
    await checkCountsByQueueMigrated(store);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() migrates a version 2 schema, keeping its tasks and seeding counts and totals from them",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const quoted = `"${fx.schema}"`;
    {
      await using sql = await schemaAt(fx, 2);
      await sql.unsafe(
        `INSERT INTO ${quoted}.tasks (id, type, idempotency_key, payload,
          status, attempts, max_attempts, run_at, created_at, updated_at,
          result, version)
        SELECT 'old-' || i, 'noop', 'k-' || i, 'null',
          CASE WHEN i <= 3 THEN 'succeeded' WHEN i = 4 THEN 'dead'
            ELSE 'queued' END,
          0, 3, ${T0}, ${T0}, ${T0} + i, to_jsonb(i), 0
        FROM generate_series(1, 6) i`,
      );
    }
    const store = await fx.open();
    assert.equal(store.migrationsApplied, POSTGRES_SCHEMA_VERSION - 2);
    const old = await store.getByKey("k-1");
    assert.deepEqual([old?.result, old?.dedupeUntil], [1, null]);
    await checkSeededCounts(store, {
      queued: 2,
      running: 0,
      succeeded: 3,
      failed: 0,
      dead: 1,
    });
    assert.deepEqual(
      await Promise.all(
        ["old-1", "old-2", "old-3", "old-4"].map(async (id) =>
          (await store.get(id)) !== undefined
        ),
      ),
      [false, false, true, false],
    );
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() migrates a version 3 schema, dropping the counting triggers, recomputing counts that were off and folding the pending totals",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const quoted = `"${fx.schema}"`;
    {
      await using sql = await schemaAt(fx, 3);
      // The triggers count these rows into deltas; the totals then carry
      // history the rows no longer show (pruned tasks), some of it still
      // in a pending delta, and a count is off (as after SQL that
      // bypassed the triggers), which the migration must not keep.
      await sql.unsafe(
        `INSERT INTO ${quoted}.tasks (id, type, payload, status, attempts,
          max_attempts, run_at, created_at, updated_at, version)
        SELECT 'old-' || i, 't', 'null',
          CASE WHEN i = 1 THEN 'succeeded' WHEN i = 2 THEN 'dead'
            ELSE 'queued' END, 0, 3, 0, 0, 0, 0
        FROM generate_series(1, 4) i`,
      );
      await sql.unsafe(
        `UPDATE ${quoted}.status_counts SET entered = entered + 30
        WHERE status = 'succeeded'`,
      );
      await sql.unsafe(
        `INSERT INTO ${quoted}.status_deltas (status, n, entered)
        VALUES ('succeeded', 0, 10), ('running', 7, 7)`,
      );
    }
    const store = await fx.open();
    assert.equal(store.migrationsApplied, POSTGRES_SCHEMA_VERSION - 3);
    const status = await store.status(T0);
    assert.deepEqual(status.counts, {
      queued: 2,
      running: 0,
      succeeded: 1,
      failed: 0,
      dead: 1,
    });
    assert.deepEqual(status.totals, { submitted: 4, succeeded: 41, dead: 1 });
    await using sql = admin();
    const [left] = await sql.unsafe(
      `SELECT
        (SELECT count(*)::int FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
          WHERE c.relnamespace = '${quoted}'::regnamespace
            AND NOT t.tgisinternal) AS triggers,
        (SELECT count(*)::int FROM pg_proc
          WHERE pronamespace = '${quoted}'::regnamespace) AS functions,
        (SELECT count(*)::int FROM ${quoted}.status_deltas) AS deltas`,
    );
    assert.deepEqual(
      [left?.["triggers"], left?.["functions"], left?.["deltas"]],
      [0, 0, 0],
    );
    await store.commit(batch({ inserts: [task("a")], claimDue: 1 }));
    const after = await store.status(T0);
    assert.deepEqual([after.counts.queued, after.counts.running], [2, 1]);
    assert.equal(after.totals.submitted, 5);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.prune() skips and deletes nothing when another transaction holds the schema's prune lock",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    await using other = fixture();
    const store = await fx.open();
    const neighbour = await other.open();
    for (const s of [store, neighbour]) {
      const { inserted } = await s.commit(
        batch({ inserts: [task("a", { claim: true })] }),
      );
      const { id, version } = inserted[0]!.record;
      await s.commit(batch({
        now: T0 + 1,
        settles: [{
          id,
          version,
          outcome: { kind: "succeeded", result: null, outputKey: null },
        }],
      }));
    }
    const policy = { succeeded: { maxAgeMs: 0 } };
    const holder = postgres(PG!, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const transaction = holder.begin(async (tx) => {
      await tx.unsafe(
        `SELECT pg_advisory_xact_lock((${PRUNE_LOCK_CLASS}::bigint << 32) | ` +
          `'"${fx.schema}"'::regnamespace::oid::bigint)`,
      );
      held();
      await released;
    });
    try {
      await withDeadline(holding, 10_000, "the prune lock");
      assert.deepEqual(await store.prune(policy, T0 + 2, 10), {
        succeeded: 0,
        dead: 0,
        skipped: true,
      });
      assert.equal((await store.get("a"))?.status, "succeeded");
      // Another schema's prune is not held up.
      assert.deepEqual(await neighbour.prune(policy, T0 + 2, 10), {
        succeeded: 1,
        dead: 0,
        skipped: false,
      });
      release();
      await withDeadline(transaction, 10_000, "the lock holder");
      assert.deepEqual(await store.prune(policy, T0 + 2, 10), {
        succeeded: 1,
        dead: 0,
        skipped: false,
      });
    } finally {
      release();
      await transaction.catch(() => {});
      await holder.end({ timeout: 5 });
    }
  },
});

/**
 * Each store, all at once, commits `rounds` batches of 5 inserts, the
 * settles of the tasks its previous batch claimed (a quarter dead, a
 * quarter retried, the rest succeeded) and a claim of 6 due tasks.
 */
async function churn(
  stores: PostgresTaskStore[],
  rounds: number,
): Promise<void> {
  const runs = stores.map(async (store, s) => {
    let held: TaskRecord[] = [];
    for (let round = 0; round < rounds; round++) {
      const now = T0 + round;
      const { claimed } = await store.commit(batch({
        now,
        inserts: Array.from(
          { length: 5 },
          (_, i) => task(`s${s}-r${round}-${i}`),
        ),
        settles: held.map((record, i) => ({
          id: record.id,
          version: record.version,
          charge: true,
          outcome: i % 4 === 0
            ? {
              kind: "dead",
              error: "Cannot run: bad",
              errorClass: "permanent",
            }
            : i % 4 === 1
            ? {
              kind: "retry",
              runAt: now + 2,
              error: "Cannot run: later",
              errorClass: "transient",
            }
            : { kind: "succeeded", result: i, outputKey: null },
        })),
        claimDue: 6,
      }));
      held = claimed;
    }
  });
  await withDeadline(Promise.all(runs), 60_000, "the commits");
}

/** The schema's rows by status, counted. */
async function rowCounts(
  sql: postgres.Sql,
  schema: string,
): Promise<StatusCounts> {
  const counts: StatusCounts = {
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    dead: 0,
  };
  for (
    const row of await sql.unsafe(
      `SELECT status, count(*)::int AS n FROM "${schema}".tasks GROUP BY status`,
    )
  ) counts[row["status"] as TaskStatus] = row["n"];
  return counts;
}

Deno.test({
  name:
    "PostgresTaskStore.status() keeps counts exact and the delta table folded when four stores commit at once",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => fx.open({ max: 2, notify: false })),
    );
    const ROUNDS = 80;
    await churn(stores, ROUNDS);
    await using sql = admin();
    const expected = await rowCounts(sql, fx.schema);
    assert.deepEqual((await stores[0]!.status(T0)).counts, expected);
    const deltas = async (): Promise<number> =>
      (await sql.unsafe(
        `SELECT count(*)::int AS n FROM "${fx.schema}".status_deltas`,
      ))[0]!["n"];
    const folded = (await sql.unsafe(
      `SELECT sum(n)::int AS n FROM "${fx.schema}".status_counts`,
    ))[0]!["n"];
    // 320 commits, each appending at most one row per status and one for
    // the submitted total: without folds there would be over a thousand.
    assert.ok(folded > 0, "commits folded the deltas");
    assert.ok((await deltas()) < 64 * 4 * 6, `${await deltas()} deltas`);
    // A prune folds whatever is left, its own deletions included.
    const pruned = await stores[1]!.prune(
      { succeeded: { maxCount: 10 }, dead: { maxCount: 10 } },
      T0 + ROUNDS,
      10_000,
    );
    assert.ok(pruned.succeeded > 0 && pruned.dead > 0);
    assert.equal(await deltas(), 0);
    const status = await stores[2]!.status(T0);
    assert.deepEqual(status.counts, await rowCounts(sql, fx.schema));
    assert.deepEqual([status.counts.succeeded, status.counts.dead], [10, 10]);
    assert.deepEqual(status.totals, {
      submitted: 4 * ROUNDS * 5,
      succeeded: expected.succeeded,
      dead: expected.dead,
    });
  },
});

Deno.test({
  name:
    "PostgresTaskStore.recount() counts rows other SQL wrote, and keeps counts exact, when four stores commit while it runs",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => fx.open({ max: 2, notify: false })),
    );
    const operator = await fx.open({ max: 1, notify: false });
    await using sql = admin();
    // Rows no Sluice statement counted, due before every other task.
    await sql.unsafe(
      `INSERT INTO "${fx.schema}".tasks (id, type, payload, status,
        attempts, max_attempts, run_at, created_at, updated_at, version)
      SELECT 'raw-' || i, 't', 'null', 'queued', 0, 3, 0, 0, 0, 0
      FROM generate_series(1, 30) i`,
    );
    assert.equal((await operator.status(T0)).counts.queued, 0);
    let committing = true;
    let recounts = 0;
    const recounting = (async () => {
      do {
        await operator.recount();
        recounts++;
      } while (committing);
    })();
    const ROUNDS = 40;
    await churn(stores, ROUNDS).finally(() => (committing = false));
    await recounting;
    assert.ok(recounts >= 1);
    const counts = await rowCounts(sql, fx.schema);
    const status = await stores[0]!.status(T0);
    assert.deepEqual(status.counts, counts, `after ${recounts} recounts`);
    assert.deepEqual(status.totals, {
      submitted: 4 * ROUNDS * 5,
      succeeded: counts.succeeded,
      dead: counts.dead,
    });
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() takes an expired key over exactly once when two stores insert it at once",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const a = await fx.open({ notify: false });
    const b = await fx.open({ notify: false });
    for (let round = 0; round < 10; round++) {
      const key = `k${round}`;
      await a.commit(batch({
        inserts: [
          task(`old${round}`, { idempotencyKey: key, dedupeUntil: T0 }),
        ],
      }));
      const [first, second] = await Promise.all([
        a.commit(batch({
          now: T0 + 1,
          inserts: [task(`a${round}`, { idempotencyKey: key })],
        })),
        b.commit(batch({
          now: T0 + 1,
          inserts: [task(`b${round}`, { idempotencyKey: key })],
        })),
      ]);
      const outcomes = [first!.inserted[0]!, second!.inserted[0]!];
      assert.equal(outcomes.filter((o) => o.inserted).length, 1, key);
      const winner = outcomes.find((o) => o.inserted)!.record.id;
      assert.deepEqual(outcomes.map((o) => o.record.id), [winner, winner]);
      assert.equal((await a.getByKey(key))?.id, winner);
      assert.equal((await a.get(`old${round}`))?.idempotencyKey, null);
    }
  },
});

Deno.test({
  name:
    "PostgresTaskStore.status() and prune() read no tasks row outside their indexes when finished rows dominate",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    await fx.open();
    await using sql = admin();
    const t = `"${fx.schema}".tasks`;
    await sql.unsafe(
      `INSERT INTO ${t} (id, type, payload, status, attempts, max_attempts,
        run_at, created_at, updated_at, version)
      SELECT 'done-' || i, 't', 'null',
        CASE WHEN i % 10 = 0 THEN 'dead' ELSE 'succeeded' END,
        1, 3, 0, 0, i, 1
      FROM generate_series(1, 20000) i`,
    );
    await sql.unsafe(`ANALYZE ${t}`);
    const q = postgresQueries(`"${fx.schema}"`);
    interface PlanNode {
      "Node Type": string;
      "Relation Name"?: string;
      "Index Name"?: string;
      Plans?: PlanNode[];
    }
    const plan = async (text: string): Promise<PlanNode[]> => {
      const [explained] = await sql.unsafe(`EXPLAIN (FORMAT JSON) ${text}`);
      const nodes: PlanNode[] = [];
      const walk = (node: PlanNode): void => {
        nodes.push(node);
        for (const child of node.Plans ?? []) walk(child);
      };
      walk((explained!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
      return nodes;
    };
    // A named queue's own rules, as prune and prunable bind them.
    const named = JSON.stringify([
      { q: "other", sk: 10, sb: 0, dk: 10, db: 0 },
    ]);
    const cases: [string, string, string[]][] = [
      // With no due row, tasks_claim and tasks_due are both empty, and the
      // planner may read either for the oldest due task.
      ["status", q.status.replaceAll("$1::bigint", String(T0)), [
        "tasks_claim",
        "tasks_due",
        "tasks_failed_due",
        "tasks_lease",
        "tasks_status_created",
      ]],
      [
        "claimDue",
        q.claimDue.replaceAll("$1::bigint", String(T0))
          .replace("$2::bigint", String(T0 + 1000))
          .replace("$3::bigint", "100")
          .replace("$4::text", `'[{"q":"default","n":100}]'`)
          .replace("$5::text", "NULL::text")
          .replace("$5::text", "NULL::text"),
        ["tasks_claim", "tasks_pkey"],
      ],
      [
        "prune",
        q.prune.replace("$1::bigint", "1000")
          .replace("$2::bigint", "100").replace("$3::bigint", "5000")
          .replace("$4::bigint", "100").replace("$5::bigint", "5000")
          .replace("$6::text", `'${named}'`),
        ["tasks_succeeded_updated", "tasks_dead_updated", "tasks_pkey"],
      ],
      [
        "prunable",
        q.prunable.replace("$1::bigint", "100").replace("$2::bigint", "5000")
          .replace("$3::bigint", "100").replace("$4::bigint", "5000")
          .replace("$5::text", `'${named}'`),
        ["tasks_succeeded_updated", "tasks_dead_updated"],
      ],
    ];
    for (const [name, text, allowed] of cases) {
      for (const node of await plan(text)) {
        if (node["Relation Name"] === "tasks") {
          assert.notEqual(node["Node Type"], "Seq Scan", name);
        }
        if (node["Index Name"] !== undefined) {
          assert.ok(
            allowed.includes(node["Index Name"]) ||
              !node["Index Name"].startsWith("tasks_"),
            `${name}: ${node["Index Name"]}`,
          );
        }
      }
    }
    // Rows written by SQL are counted once an operator recounts.
    const store = await fx.open();
    await store.recount();
    const status = await store.status(T0);
    assert.deepEqual([status.counts.succeeded, status.counts.dead], [
      18_000,
      2_000,
    ]);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.prunable() counts on a read-only store while prune() refuses to write",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const writer = await fx.open();
    const { inserted } = await writer.commit(
      batch({ inserts: [task("a", { claim: true })] }),
    );
    const { id, version } = inserted[0]!.record;
    await writer.commit(batch({
      now: T0 + 1,
      settles: [{
        id,
        version,
        outcome: {
          kind: "dead",
          error: "Cannot run: bad",
          errorClass: "permanent",
        },
      }],
    }));
    const reader = await fx.open({ readonly: true });
    const policy = { dead: { maxCount: 0 } };
    assert.deepEqual(await reader.prunable(policy, T0 + 2), {
      succeeded: 0,
      dead: 1,
      skipped: false,
    });
    await assert.rejects(reader.prune(policy, T0 + 2, 10), {
      message: "Cannot prune tasks: task store is read-only",
    });
  },
});

Deno.test({
  name:
    "PostgresTaskStore.status() counts started tasks through an index on running rows when finished rows dominate",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    const [a] = (await store.commit(
      batch({ inserts: [task("a"), task("b")], claimDue: 2 }),
    )).claimed;
    await store.commit(batch({
      now: T0 + 1,
      starts: [{ id: a!.id, version: a!.version }],
    }));
    await using sql = admin();
    const t = `"${fx.schema}".tasks`;
    await sql.unsafe(
      `INSERT INTO ${t} (id, type, payload, status, attempts, max_attempts,
        run_at, created_at, updated_at, version, started_at)
      SELECT 'done-' || i, 't', 'null', 'succeeded', 1, 3, 0, 0, 0, 1, 0
      FROM generate_series(1, 5000) i`,
    );
    await sql.unsafe(`ANALYZE ${t}`);
    const status = await store.status(T0 + 2);
    assert.deepEqual([status.counts.running, status.started], [2, 1]);
    // The started count's plan node reads the running rows through an
    // index; the finished rows (all with a start recorded) are not read.
    const text = postgresQueries(`"${fx.schema}"`).status
      .replaceAll("$1::bigint", String(T0 + 2));
    const [explained] = await sql.unsafe(`EXPLAIN (FORMAT JSON) ${text}`);
    interface PlanNode {
      "Node Type": string;
      "Index Name"?: string;
      Filter?: string;
      "Index Cond"?: string;
      "Recheck Cond"?: string;
      Plans?: PlanNode[];
    }
    const nodes: PlanNode[] = [];
    const walk = (node: PlanNode): void => {
      nodes.push(node);
      for (const child of node.Plans ?? []) walk(child);
    };
    walk((explained!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
    const reading = nodes.filter((node) =>
      [node.Filter, node["Index Cond"], node["Recheck Cond"]].some((cond) =>
        cond?.includes("started_at") === true
      )
    );
    assert.equal(reading.length, 1, JSON.stringify(nodes));
    assert.notEqual(reading[0]!["Node Type"], "Seq Scan");
    // Either an index condition on status, or the partial lease index,
    // whose predicate is status = 'running'.
    assert.match(
      JSON.stringify(reading[0]),
      /status = 'running'|tasks_lease/,
      "the index picks the running rows",
    );
  },
});

Deno.test({
  name:
    "PostgresTaskStore.onNotify() wakes a listener when another store inserts due work",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const consumer = await fx.open();
    const producer = await fx.open();
    let calls = 0;
    const stop = consumer.onNotify(() => calls++);
    // The first call says the LISTEN is live.
    await waitFor(() => calls === 1, { what: "LISTEN to be live" });
    await producer.commit(batch({ inserts: [task("a")] }));
    await waitFor(() => calls === 2, { what: "the insert's NOTIFY" });
    const { claimed } = await consumer.commit(batch({ claimDue: 5 }));
    assert.deepEqual(claimed.map((record) => record.id), ["a"]);
    stop();
    stop();
    await producer.commit(batch({ inserts: [task("b")] }));
    // A second subscription sees the next insert; the first, unsubscribed,
    // must not (notifications arrive in order, so by the time "c" reaches
    // the new listener anything for the old one has arrived too).
    let later = 0;
    const stopLater = consumer.onNotify(() => later++);
    await waitFor(() => later === 1, { what: "LISTEN to be live again" });
    await producer.commit(batch({ inserts: [task("c")] }));
    await waitFor(() => later === 2, { what: "the second NOTIFY" });
    stopLater();
    assert.equal(calls, 2);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() rejects when its connection is terminated and succeeds once reconnected",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open({ max: 1 });
    const [claim] = (await store.commit(
      batch({ inserts: [task("a")], claimDue: 1 }),
    )).claimed;
    await using sql = admin();
    // Hold the task's row so the settle below waits inside its transaction,
    // then cut the store's connection while it waits.
    const blocker = postgres(PG!, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holding = blocker.begin(async (tx) => {
      await tx.unsafe(
        `SELECT id FROM "${fx.schema}".tasks WHERE id = 'a' FOR UPDATE`,
      );
      locked();
      await released;
    });
    try {
      await withDeadline(isLocked, 10_000, "the row lock");
      const settle = batch({
        now: T0 + 1,
        settles: [{
          id: "a",
          version: claim!.version,
          outcome: { kind: "succeeded", result: 1, outputKey: null },
        }],
        inserts: [task("b")],
      });
      const first = store.commit(settle);
      const failed = first.then(() => null, (error: Error) => error);
      const app = `sluice/${fx.schema}`;
      await waitFor(async () => {
        const rows = await sql.unsafe(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 " +
            "AND wait_event_type = 'Lock'",
          [app],
        );
        return rows.length > 0;
      }, { what: "the settle to wait on the row lock" });
      const killed = await sql.unsafe(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
          "WHERE application_name = $1 AND pid <> pg_backend_pid()",
        [app],
      );
      assert.ok(killed.length > 0);
      const error = await withDeadline(failed, 10_000, "the cut commit");
      assert.ok(error instanceof Error, "the commit must reject");
      release();
      await holding;
      // Nothing of the cut transaction was applied.
      assert.equal(
        (await sql.unsafe(
          `SELECT count(*)::int AS n FROM "${fx.schema}".tasks WHERE id = 'b'`,
        ))[0]!["n"],
        0,
      );
      // The client reconnects on the next query; retry like the queue does.
      const deadline = Date.now() + 10_000;
      let result;
      for (let attempt = 0;; attempt++) {
        try {
          result = await store.commit(settle);
          break;
        } catch (retryError) {
          if (Date.now() > deadline || attempt >= 20) throw retryError;
        }
      }
      assert.deepEqual(result.settled, [true]);
      assert.equal(result.inserted[0]?.inserted, true);
      assert.equal((await store.get("a"))?.status, "succeeded");
      assert.equal((await store.get("b"))?.status, "queued");
    } finally {
      release();
      await holding.catch(() => {});
      await blocker.end({ timeout: 5 });
    }
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() applies 500 inserts, 500 settles and 500 claims when given them in one batch",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    const first = await store.commit(batch({
      inserts: Array.from({ length: 500 }, (_, i) => task(`a${i}`)),
      claimDue: 500,
    }));
    assert.equal(first.claimed.length, 500);
    const started = performance.now();
    const second = await store.commit(batch({
      now: T0 + 1,
      settles: first.claimed.map((record: TaskRecord) => ({
        id: record.id,
        version: record.version,
        outcome: { kind: "succeeded", result: record.id, outputKey: null },
      })),
      inserts: Array.from(
        { length: 500 },
        (_, i) => task(`b${i}`, { idempotencyKey: `k${i}` }),
      ),
      claimDue: 500,
    }));
    const elapsed = performance.now() - started;
    assert.equal(second.settled.filter((ok) => ok).length, 500);
    assert.equal(second.inserted.filter((o) => o.inserted).length, 500);
    assert.deepEqual(
      second.claimed.map((record) => record.id),
      Array.from({ length: 500 }, (_, i) => `b${i}`),
    );
    const status = await store.status(T0 + 1);
    assert.deepEqual(status.counts, {
      queued: 0,
      running: 500,
      succeeded: 500,
      failed: 0,
      dead: 0,
    });
    // A round trip per task would be 1,500 statements; a handful takes
    // well under this on any machine that runs the suite.
    assert.ok(elapsed < 2_000, `one commit took ${elapsed.toFixed(0)} ms`);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() refuses a payload when jsonb cannot hold it",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { payload: "nul\0here" })] })),
      TypeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a", { payload: "\ud800" })] })),
      TypeError,
    );
    await assert.rejects(
      store.commit(batch({ inserts: [task("a\0")] })),
      TypeError,
    );
    const { inserted } = await store.commit(batch({
      inserts: [
        task("a", { payload: "\\u0000 and 🙂" }),
        task("n", {
          payload: null,
        }),
      ],
    }));
    assert.equal(inserted.length, 2);
    assert.equal((await store.get("a"))?.payload, "\\u0000 and 🙂");
    assert.equal((await store.get("n"))?.payload, null);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() inserts each key once without an error when four stores commit overlapping keys at once",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    // Separate pools: the four stores stand for four processes.
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => fx.open({ max: 2, notify: false })),
    );
    const KEYS = 1_000;
    const BATCH = 50;
    for (let round = 0; round < 4; round++) {
      const keys = Array.from({ length: KEYS }, (_, i) => `r${round}-k${i}`);
      // Each store inserts every key once, in its own shuffled order, in
      // batches of 50 committed one after another, all stores at once.
      const runs = stores.map(async (store, s) => {
        const random = mulberry32(round * 10 + s);
        const order = [...keys];
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        const outcomes: InsertOutcome[] = [];
        for (let i = 0; i < order.length; i += BATCH) {
          const { inserted } = await store.commit(batch({
            inserts: order.slice(i, i + BATCH).map((key) =>
              task(`${key}-s${s}`, { idempotencyKey: key })
            ),
          }));
          outcomes.push(...inserted);
        }
        return outcomes;
      });
      const outcomes = (await withDeadline(
        Promise.all(runs),
        60_000,
        `round ${round}`,
      )).flat();
      assert.equal(outcomes.length, 4 * KEYS);
      const winners = new Map<string, string>();
      for (const outcome of outcomes) {
        if (!outcome.inserted) continue;
        const key = outcome.record.idempotencyKey!;
        assert.ok(!winners.has(key), `${key} was inserted twice`);
        winners.set(key, outcome.record.id);
      }
      assert.equal(winners.size, KEYS, "every key was inserted once");
      for (const outcome of outcomes) {
        const key = outcome.record.idempotencyKey!;
        assert.equal(outcome.record.id, winners.get(key), key);
      }
    }
    const status = await stores[0]!.status(T0);
    assert.equal(status.counts.queued, 4 * KEYS);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() keeps the first of two inserts with one key when a batch holds both in reverse key order",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    const { inserted } = await store.commit(batch({
      inserts: [
        task("z2", { idempotencyKey: "z" }),
        task("a1", { idempotencyKey: "a" }),
        task("z1", { idempotencyKey: "z" }),
        task("n", { idempotencyKey: null }),
        task("a2", { idempotencyKey: "a" }),
      ],
    }));
    assert.deepEqual(
      inserted.map((o) => [o.inserted, o.record.id]),
      [[true, "z2"], [true, "a1"], [false, "z2"], [true, "n"], [
        false,
        "a1",
      ]],
    );
    // Claims still follow submission order, not key order.
    const { claimed } = await store.commit(batch({ claimDue: 10 }));
    assert.deepEqual(claimed.map((r) => r.id), ["z2", "a1", "n"]);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.open() creates nothing and says there is no queue when opened read-only on a missing or empty schema",
  ignore,
  async fn(): Promise<void> {
    const schema = freshSchema();
    await using sql = admin();
    const schemas = async (): Promise<number> =>
      (await sql.unsafe(
        "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1",
        [schema],
      ))[0]!["n"];
    try {
      const expected = {
        message:
          `Cannot open task store: schema "${schema}" holds no Sluice queue`,
      };
      await assert.rejects(
        PostgresTaskStore.open(PG!, { schema, readonly: true }),
        expected,
      );
      await assert.rejects(
        openStore(PG!, { readonly: true, postgres: { schema } }),
        expected,
      );
      assert.equal(await schemas(), 0, "no schema was created");
      await sql.unsafe(`CREATE SCHEMA "${schema}"`);
      await sql.unsafe(`CREATE TABLE "${schema}".other (x int)`);
      await assert.rejects(
        PostgresTaskStore.open(PG!, { schema, readonly: true }),
        expected,
      );
      const tables = await sql.unsafe(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        [schema],
      );
      assert.deepEqual(tables.map((row) => row["table_name"]), ["other"]);
      await assert.rejects(
        PostgresTaskStore.open(PG!, {
          schema,
          readonly: "yes" as unknown as boolean,
        }),
        TypeError,
      );
    } finally {
      await PostgresTaskStore.drop(PG!, { schema });
    }
  },
});

Deno.test({
  name:
    "PostgresTaskStore reads but refuses every write when opened read-only on an existing queue",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const writer = await fx.open();
    const { inserted } = await writer.commit(batch({
      inserts: [task("a", { idempotencyKey: "k" }), task("b")],
    }));
    assert.equal(inserted.length, 2);
    const reader = await fx.open({ readonly: true });
    assert.equal(reader.readonly, true);
    assert.equal(reader.migrationsApplied, 0);
    assert.equal((await reader.get("a"))?.status, "queued");
    assert.equal((await reader.getByKey("k"))?.id, "a");
    assert.equal((await reader.list()).length, 2);
    assert.equal((await reader.status(T0)).counts.queued, 2);
    assert.equal(await reader.staleSettles(), 0);
    await assert.rejects(
      reader.commit(batch({ inserts: [task("c")] })),
      { message: "Cannot commit: task store is read-only" },
    );
    await assert.rejects(
      reader.commit(batch({ claimDue: 1 })),
      /Cannot commit: task store is read-only/,
    );
    await assert.rejects(
      reader.recoverExpired(T0),
      { message: "Cannot recover expired leases: task store is read-only" },
    );
    await assert.rejects(
      reader.requeue("all", T0),
      { message: "Cannot requeue tasks: task store is read-only" },
    );
    // openStore passes readonly on to PostgreSQL.
    const viaOpenStore = await openStore(PG!, {
      readonly: true,
      postgres: { schema: fx.schema, max: 1 },
    });
    try {
      assert.ok(
        viaOpenStore instanceof PostgresTaskStore && viaOpenStore.readonly,
      );
    } finally {
      await viaOpenStore.close();
    }
    assert.equal(await writer.get("c"), undefined);
    assert.equal((await writer.status(T0)).counts.queued, 2);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.commit() re-sends the commit when the server aborts it as a deadlock",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open({ max: 1 });
    await using sql = admin();
    // Another writer holds key k2 and, once the store's commit holds k1
    // and waits for k2, asks for k1: a deadlock. That writer's long
    // deadlock_timeout makes the store's transaction the one aborted.
    const blocker = postgres(PG!, { max: 1, onnotice: () => {} });
    const insertRow = `INSERT INTO "${fx.schema}".tasks (id, type,
        idempotency_key, payload, status, attempts, max_attempts, run_at,
        created_at, updated_at, version)
      VALUES ($1, 't', $2, 'null', 'queued', 0, 1, 0, 0, 0, 0)`;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const other = blocker.begin(async (tx) => {
      await tx.unsafe("SET LOCAL deadlock_timeout = '60s'");
      await tx.unsafe(insertRow, ["x2", "k2"]);
      held();
      await released;
      await tx.unsafe(insertRow, ["x1", "k1"]);
    });
    try {
      await withDeadline(holding, 10_000, "the other writer's k2");
      const commit = store.commit(batch({
        inserts: [
          task("s2", { idempotencyKey: "k2" }),
          task("s1", { idempotencyKey: "k1" }),
        ],
      }));
      const outcome = commit.then(() => null, (error: Error) => error);
      await waitFor(async () => {
        const rows = await sql.unsafe(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 " +
            "AND wait_event_type = 'Lock'",
          [`sluice/${fx.schema}`],
        );
        return rows.length > 0;
      }, { what: "the commit to wait for k2" });
      release();
      await withDeadline(other, 20_000, "the other writer");
      assert.equal(await withDeadline(outcome, 20_000, "the commit"), null);
      const { inserted } = await commit;
      assert.deepEqual(
        inserted.map((o) => [o.inserted, o.record.id]),
        [[false, "x2"], [false, "x1"]],
      );
    } finally {
      release();
      await other.catch(() => {});
      await blocker.end({ timeout: 5 });
    }
  },
});

Deno.test({
  name:
    "PostgresTaskStore's claim reads tasks_claim in order, with no sort of the queue, at 100,000 queued rows",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    await using sql = admin();
    const t = `"${fx.schema}".tasks`;
    // 100,000 due rows in two queues and five priorities, and as many of
    // a third queue that the claim does not ask for.
    await sql.unsafe(
      `INSERT INTO ${t} (id, type, payload, status, attempts, max_attempts,
        run_at, created_at, updated_at, version, queue, priority)
      SELECT 'q-' || i, 'noop', 'null', 'queued', 0, 3, ${T0} - i % 1000,
        ${T0}, ${T0}, 0,
        CASE i % 3 WHEN 0 THEN 'emails' WHEN 1 THEN 'images' ELSE 'other' END,
        i % 5
      FROM generate_series(1, 150000) i`,
    );
    await sql.unsafe(`ANALYZE ${t}`);
    const q = postgresQueries(`"${fx.schema}"`);
    const text = q.claimDue.replaceAll("$1::bigint", String(T0))
      .replace("$2::bigint", String(T0 + 1000))
      .replace("$3::bigint", "64")
      .replace(
        "$4::text",
        `'[{"q":"emails","n":64},{"q":"images","n":64}]'`,
      )
      .replaceAll("$5::text", "NULL::text");
    // EXPLAIN ANALYZE runs the claim: in a transaction rolled back after.
    const plan = await sql.begin(async (tx) => {
      const [row] = await tx.unsafe(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`,
      );
      await tx.unsafe("ROLLBACK AND CHAIN");
      return (row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan;
    });
    interface PlanNode {
      "Node Type": string;
      "Relation Name"?: string;
      "Index Name"?: string;
      "Actual Rows"?: number;
      "Actual Loops"?: number;
      "Sort Key"?: string[];
      Plans?: PlanNode[];
    }
    const nodes: PlanNode[] = [];
    const walk = (node: PlanNode): void => {
      nodes.push(node);
      for (const child of node.Plans ?? []) walk(child);
    };
    walk(plan);
    const scans = nodes.filter((n) =>
      n["Relation Name"] === "tasks" && n["Node Type"].endsWith("Scan")
    );
    assert.ok(scans.length > 0);
    for (const scan of scans) {
      assert.notEqual(scan["Node Type"], "Seq Scan");
      if (scan["Index Name"] !== "tasks_pkey") {
        assert.equal(scan["Index Name"], "tasks_claim");
        // Each queue's scan stops at its LIMIT: rows read per loop are
        // the claim's size, not the queue's 50,000.
        assert.ok(
          (scan["Actual Rows"] ?? 0) <= 64,
          `${scan["Actual Rows"]} rows from ${scan["Index Name"]}`,
        );
      }
    }
    // The only sort is the merge of the queues' candidates (at most
    // 2 x 64 rows), never one of a queue's rows.
    for (const sort of nodes.filter((n) => n["Node Type"] === "Sort")) {
      assert.ok((sort["Actual Rows"] ?? 0) <= 128);
    }
    const { claimed } = await store.commit({
      settles: [],
      inserts: [],
      claimDue: 64,
      claimQueues: [{ queue: "emails" }, { queue: "images" }],
      leaseMs: 1000,
      now: T0,
    });
    assert.equal(claimed.length, 64);
    assert.ok(claimed.every((r) => r.priority === 4));
    assert.ok(claimed.every((r) => r.queue !== "other"));
  },
});

Deno.test({
  name:
    "PostgresTaskStore.insertAll() inserts nothing and leaves the store usable when its connection is terminated mid-transaction",
  ignore,
  async fn(): Promise<void> {
    await using fx = fixture();
    const store = await fx.open();
    await using sql = admin();
    const task = (id: string): NewTask => ({
      id,
      type: "noop",
      idempotencyKey: null,
      payload: { id },
      maxAttempts: 1,
      runAt: T0,
    });
    const firstWritten = Promise.withResolvers<void>();
    const terminated = Promise.withResolvers<void>();
    async function* batches(): AsyncGenerator<readonly NewTask[]> {
      yield [task("a"), task("b")];
      // insertAll asks for this batch once the first is written.
      firstWritten.resolve();
      await terminated.promise;
      yield [task("c")];
    }
    const inserting = store.insertAll(batches(), {
      now: T0,
      onInserted: () => {},
    });
    await firstWritten.promise;
    // The transaction waits, idle, on its own connection: the one whose
    // last statement wrote this schema's tasks.
    const pattern = `%"${fx.schema}".tasks%`;
    let killed = 0;
    try {
      await waitFor(async () => {
        const rows = await sql`
          SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE pid <> pg_backend_pid()
            AND state = 'idle in transaction'
            AND query LIKE ${pattern}`;
        killed += rows.length;
        return killed > 0;
      }, { what: "the insertAll transaction to wait idle" });
    } finally {
      terminated.resolve();
    }
    assert.equal(killed, 1, "one transaction was terminated");
    await assert.rejects(inserting);
    // Nothing of the transaction is left, and the counts say so.
    const [rows] = await sql.unsafe(
      `SELECT count(*)::int AS n FROM "${fx.schema}".tasks`,
    );
    assert.equal(rows!["n"], 0);
    const status = await store.status(T0);
    assert.equal(status.counts.queued, 0);
    assert.equal(status.totals.submitted, 0);
    // The store's pool replaced the connection: it still commits.
    const { inserted } = await store.commit({
      settles: [],
      inserts: [task("d")],
      claimDue: 0,
      leaseMs: 1000,
      now: T0,
    });
    assert.equal(inserted[0]?.inserted, true);
    assert.equal((await store.status(T0)).counts.queued, 1);
  },
});
