import assert from "node:assert/strict";
import postgres from "postgres";
import { openStore } from "../lib/store/open_store.ts";
import {
  PostgresTaskStore,
  type PostgresTaskStoreOptions,
} from "../lib/store/postgres_store.ts";
import type { TaskRecord, TaskStore } from "../lib/store/store.ts";
import { waitFor, withDeadline } from "./_helpers.ts";
import { batch, storeConformance, T0, task } from "./store_conformance.ts";

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
 * The real store, with `close()` also dropping its schema: the conformance
 * suite only closes what it opens.
 */
async function openConformanceStore(): Promise<TaskStore> {
  const schema = freshSchema();
  const store = await PostgresTaskStore.open(PG!, { schema, max: 2 });
  let closing: Promise<void> | null = null;
  return {
    kind: store.kind,
    durable: store.durable,
    checkValue: (value, what) => store.checkValue(value, what),
    commit: (b) => store.commit(b),
    recoverExpired: (now) => store.recoverExpired(now),
    get: (id) => store.get(id),
    getByKey: (key) => store.getByKey(key),
    list: (options) => store.list(options),
    requeue: (ids, now) => store.requeue(ids, now),
    status: (now, windowMs) => store.status(now, windowMs),
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
          assert.equal(record.attempts, 1);
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
      [0, 0, 0, 1],
    );
    await using sql = admin();
    const rows = await sql.unsafe(
      `SELECT version FROM "${fx.schema}".migrations ORDER BY version`,
    );
    assert.deepEqual(rows.map((row) => row["version"]), [1]);
    const reopened = await fx.open();
    assert.equal(reopened.migrationsApplied, 0);
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
      batch({ inserts: [task("a")], claimIds: ["a"] }),
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
