import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { PostgresTaskStore } from "../../../lib/store/postgres/postgres_store.ts";
import type { NewTask } from "../../../lib/store/store.ts";

// Runs against the server SLUICE_TEST_PG names, each case in a schema of
// its own (dropped at the end); without it every case is ignored.
const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;
const ignore = PG === undefined;

/** A store on a fresh schema and a caller's client; dispose closes both and drops it. */
interface Fixture extends AsyncDisposable {
  schema: string;
  store: PostgresTaskStore;
  sql: postgres.Sql;
}

async function fixture(): Promise<Fixture> {
  const schema = `sluice_insw_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
  const store = await PostgresTaskStore.open(PG!, { schema, max: 2 });
  const sql = postgres(PG!, { max: 1, onnotice: () => {} });
  return {
    schema,
    store,
    sql,
    async [Symbol.asyncDispose](): Promise<void> {
      await sql.end({ timeout: 5 });
      await store.close();
      await PostgresTaskStore.drop(PG!, { schema });
    },
  };
}

function task(id: string, fields: Partial<NewTask> = {}): NewTask {
  return {
    id,
    type: "t",
    idempotencyKey: null,
    payload: { id },
    maxAttempts: 3,
    runAt: 0,
    ...fields,
  };
}

Deno.test({
  name:
    "PostgresTaskStore.insertWith() counts the tasks with the transaction: a savepoint rolled back takes its tasks and counts",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    const { store, sql } = fx;
    await sql.begin(async (tx) => {
      await store.insertWith(tx, [task("kept")], 10);
      await tx.savepoint(async (sp) => {
        await store.insertWith(sp, [task("dropped-1"), task("dropped-2")], 10);
        throw new Error("undo");
      }).catch(() => {});
      // Nothing is counted outside until the commit.
      assert.equal((await store.status(10)).totals.submitted, 0);
    });
    assert.deepEqual((await store.list()).map((t) => t.id), ["kept"]);
    const { counts, totals } = await store.status(10);
    assert.equal(counts.queued, 1);
    assert.equal(totals.submitted, 1);
    // The kept counts agree with the rows.
    await store.recount();
    assert.deepEqual((await store.status(10)).counts, counts);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.insertWith() takes over a key whose dedupe window has ended, and not one still open",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    const { store, sql } = fx;
    await store.commit({
      settles: [],
      inserts: [task("first", { idempotencyKey: "k", dedupeUntil: 100 })],
      claimDue: 0,
      leaseMs: 1000,
      now: 0,
    });
    const [open, ended] = await sql.begin(async (tx) => [
      (await store.insertWith(
        tx,
        [task("early", { idempotencyKey: "k" })],
        100,
      ))
        .inserted[0]!,
      (await store.insertWith(tx, [task("late", { idempotencyKey: "k" })], 101))
        .inserted[0]!,
    ]);
    assert.deepEqual([open.inserted, open.record.id], [false, "first"]);
    assert.deepEqual([ended.inserted, ended.record.id], [true, "late"]);
    assert.equal((await store.getByKey("k"))?.id, "late");
    assert.equal((await store.status(101)).totals.submitted, 2);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.transactionStates() reports committed, aborted and open transactions, and refuses what is no transaction id",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    const { store, sql } = fx;
    const committed = await sql.begin(async (tx) => {
      const { transactionId } = await store.insertWith(tx, [task("a")], 0);
      assert.deepEqual(await store.transactionStates([transactionId]), [
        "in progress",
      ]);
      return transactionId;
    });
    let aborted = "";
    await sql.begin(async (tx) => {
      aborted = (await store.insertWith(tx, [task("b")], 0)).transactionId;
      throw new Error("undo");
    }).catch(() => {});
    assert.deepEqual(
      await store.transactionStates([aborted, committed, committed]),
      ["aborted", "committed", "committed"],
    );
    assert.deepEqual(await store.transactionStates([]), []);
    await assert.rejects(store.transactionStates(["1; DROP"]), RangeError);
    await assert.rejects(store.transactionStates([1 as never]), TypeError);
  },
});

Deno.test({
  name:
    "PostgresTaskStore.insertWith() refuses a read-only store, a claimed task and a bad payload before sending anything",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    const { store, sql } = fx;
    const reader = await PostgresTaskStore.open(PG!, {
      schema: fx.schema,
      readonly: true,
      max: 1,
    });
    try {
      await sql.begin(async (tx) => {
        await assert.rejects(
          reader.insertWith(tx, [task("a")], 0),
          /read-only/,
        );
        await assert.rejects(
          store.insertWith(tx, [task("a", { claim: true })], 0),
          RangeError,
        );
        await assert.rejects(
          store.insertWith(tx, [task("a", { payload: 1n })], 0),
          TypeError,
        );
        // The transaction was not aborted.
        await store.insertWith(tx, [task("a")], 0);
      });
    } finally {
      await reader.close();
    }
    assert.equal((await store.get("a"))?.status, "queued");
  },
});
