import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import {
  QueueClosedError,
  type TaskQueueOptions,
} from "../../lib/queue/types.ts";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import type { PostgresTransaction } from "../../lib/store/postgres/postgres_store.ts";
import type { StoreStatus } from "../../lib/store/store.ts";
import { tempDir, withDeadline } from "../_helpers.ts";

// PostgreSQL cases run against the server SLUICE_TEST_PG names, each in a
// schema of its own (dropped at the end); without it they are ignored.
const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;
const ignore = PG === undefined;
const DEADLINE = 30_000;
const quiet = { level: "error" } as const;

/**
 * A schema for one test, the caller's own client (its transactions are the
 * ones tasks are submitted in) and an `orders` table of the caller's in
 * the schema; dispose ends the client and drops the schema.
 */
interface Fixture extends AsyncDisposable {
  schema: string;
  sql: postgres.Sql;
  orders: string;
  /** Opens a queue on the schema. */
  queue(options?: TaskQueueOptions): Promise<TaskQueue>;
}

async function fixture(): Promise<Fixture> {
  const schema = `sluice_txenq_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
  // The store creates the schema; the caller's table lives beside it.
  await (await PostgresTaskStore.open(PG!, { schema, max: 1 })).close();
  const sql = postgres(PG!, { max: 2, onnotice: () => {} });
  const orders = `"${schema}".orders`;
  await sql.unsafe(`CREATE TABLE ${orders} (id text PRIMARY KEY)`);
  return {
    schema,
    sql,
    orders,
    queue: (options = {}) =>
      TaskQueue.open({
        db: PG!,
        postgres: { schema, max: 2 },
        logger: quiet,
        ...options,
      }),
    async [Symbol.asyncDispose](): Promise<void> {
      await sql.end({ timeout: 5 });
      await PostgresTaskStore.drop(PG!, { schema });
    },
  };
}

const double = (value: number) => ({
  type: "compute",
  payload: { operation: "double", value },
});

/** The kept counts and totals, without the time-dependent fields. */
function counted(status: StoreStatus): Pick<StoreStatus, "counts" | "totals"> {
  return { counts: status.counts, totals: status.totals };
}

Deno.test({
  name:
    "TaskQueue.submitWith() runs the task once the caller's transaction commits, with the caller's rows",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    await using queue = await fx.queue({ workers: 1 });
    const handle = await fx.sql.begin(async (tx) => {
      await tx.unsafe(`INSERT INTO ${fx.orders} (id) VALUES ('order-1')`);
      return await queue.submitWith(tx, double(21));
    });
    assert.equal(handle.deduplicated, false);
    assert.deepEqual(await withDeadline(handle.result, DEADLINE, "result"), {
      result: "42",
    });
    const record = await queue.getTask(handle.id);
    assert.equal(record?.status, "succeeded");
    const status = await queue.store.status(Date.now());
    assert.equal(status.counts.succeeded, 1);
    assert.equal(status.counts.queued + status.counts.running, 0);
    assert.deepEqual(status.totals, { submitted: 1, succeeded: 1, dead: 0 });
    assert.equal(
      (await fx.sql.unsafe(`SELECT id FROM ${fx.orders}`)).length,
      1,
    );
  },
});

Deno.test({
  name:
    "TaskQueue.submitWith() leaves no task and no count change when the transaction rolls back",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    await using queue = await fx.queue({ consume: false });
    await queue.submit(double(1)); // a count to keep
    const before = counted(await queue.store.status(Date.now()));
    let submitted: Awaited<ReturnType<typeof queue.submitWith>> | undefined;
    await assert.rejects(
      fx.sql.begin(async (tx) => {
        await tx.unsafe(`INSERT INTO ${fx.orders} (id) VALUES ('order-1')`);
        submitted = await queue.submitWith(tx, double(2));
        throw new Error("payment declined");
      }),
      /payment declined/,
    );
    const handle = submitted!;
    await assert.rejects(withDeadline(handle.result, DEADLINE, "result"), {
      message:
        `Cannot finish task ${handle.id}: the transaction that submitted it was rolled back`,
    });
    assert.equal(await queue.getTask(handle.id), undefined);
    assert.deepEqual(counted(await queue.store.status(Date.now())), before);
    assert.deepEqual(before.counts.queued, 1);
    assert.equal(
      (await fx.sql.unsafe(`SELECT id FROM ${fx.orders}`)).length,
      0,
    );
  },
});

Deno.test({
  name:
    "TaskQueue.submitWith() answers a duplicate key with the first task, in the transaction or committed before",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    await using queue = await fx.queue({ consume: false });
    const earlier = await queue.submit({
      ...double(3),
      idempotencyKey: "earlier",
    });
    const [first, second, again] = await fx.sql.begin(async (tx) => [
      await queue.submitWith(tx, { ...double(4), idempotencyKey: "order-7" }),
      await queue.submitWith(tx, { ...double(5), idempotencyKey: "order-7" }),
      await queue.submitWith(tx, { ...double(6), idempotencyKey: "earlier" }),
    ]);
    assert.deepEqual(
      [first.deduplicated, second.deduplicated, again.deduplicated],
      [false, true, true],
    );
    assert.equal(second.id, first.id);
    assert.equal(again.id, earlier.id);
    assert.deepEqual((await queue.getTask(first.id))?.payload, {
      operation: "double",
      value: 4,
    });
    const { counts, totals } = await queue.store.status(Date.now());
    assert.equal(counts.queued, 2);
    assert.equal(totals.submitted, 2);
    assert.equal((await queue.store.list()).length, 2);
  },
});

Deno.test({
  name:
    "TaskQueue.submitWith() keeps the task from other consumers until the commit, which wakes them",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    await using producer = await fx.queue({ consume: false });
    // Polls too seldom to matter: the commit's NOTIFY wakes the consumer.
    await using consumer = await fx.queue({
      workers: 1,
      pollIntervalMs: 600_000,
    });
    await using probe = await PostgresTaskStore.open(PG!, {
      schema: fx.schema,
      max: 1,
    });
    const started: string[] = [];
    consumer.on("started", (e) => started.push(e.id));
    const succeeded = Promise.withResolvers<string>();
    consumer.on("succeeded", (e) => succeeded.resolve(e.id));

    let id = "";
    const handle = await fx.sql.begin(async (tx) => {
      const handle = await producer.submitWith(tx, double(8));
      id = handle.id;
      // While the transaction is open the task is nobody's: not readable,
      // not counted, and a claim (the consumers' statement) finds nothing.
      assert.equal(await probe.get(id), undefined);
      assert.equal((await probe.status(Date.now())).counts.queued, 0);
      const { claimed } = await probe.commit({
        settles: [],
        inserts: [],
        claimDue: 10,
        leaseMs: 60_000,
        now: Date.now(),
      });
      assert.deepEqual(claimed, []);
      // Inside the transaction, it is there.
      const [row] = await tx.unsafe(
        `SELECT status FROM "${fx.schema}".tasks WHERE id = $1`,
        [id],
      );
      assert.equal(row?.["status"], "queued");
      assert.deepEqual(started, []);
      return handle;
    });
    assert.equal(await withDeadline(succeeded.promise, DEADLINE, "run"), id);
    assert.deepEqual(started, [id]);
    assert.deepEqual(await withDeadline(handle.result, DEADLINE, "result"), {
      result: "16",
    });
    const { counts, totals } = await probe.status(Date.now());
    assert.equal(counts.succeeded, 1);
    assert.equal(counts.queued + counts.running, 0);
    assert.deepEqual(totals, { submitted: 1, succeeded: 1, dead: 0 });
  },
});

Deno.test({
  name:
    "TaskQueue.submitWith() refuses bad input like submit and leaves the transaction usable",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    await using queue = await fx.queue({ consume: false });
    const refusal = await queue.submit({ type: "" }).catch((e) => e);
    assert.ok(refusal instanceof TypeError);
    const handle = await fx.sql.begin(async (tx) => {
      await assert.rejects(queue.submitWith(tx, { type: "" }), {
        name: "TypeError",
        message: refusal.message,
      });
      await assert.rejects(
        queue.submitWith(tx, { type: "t", payload: { n: NaN } }),
        TypeError,
      );
      await assert.rejects(
        queue.submitWith(tx, { type: "t", maxAttempts: 0 }),
        RangeError,
      );
      await assert.rejects(
        queue.submitWith(tx, { type: "t" }, { detached: "yes" as never }),
        /detached must be a boolean/,
      );
      // Nothing was sent: the transaction goes on.
      await tx.unsafe(`INSERT INTO ${fx.orders} (id) VALUES ('order-1')`);
      return await queue.submitWith(tx, double(9), { detached: true });
    });
    await assert.rejects(handle.result, /submitted detached/);
    assert.equal((await queue.getTask(handle.id))?.status, "queued");
    // A pool or a reserved connection is no transaction: refused.
    await assert.rejects(
      queue.submitWith(fx.sql as unknown as PostgresTransaction, double(1)),
      { name: "TypeError", message: /outside any transaction/ },
    );
    await assert.rejects(
      queue.submitWith(null as never, double(1)),
      { name: "TypeError", message: /tx must be the transaction/ },
    );
    assert.equal((await queue.store.status(Date.now())).totals.submitted, 1);
  },
});

Deno.test({
  name:
    "TaskQueue.submitWith() rejects the handle with QueueClosedError when the queue closes before the transaction ends",
  ignore,
  async fn(): Promise<void> {
    await using fx = await fixture();
    const queue = await fx.queue({ consume: false });
    try {
      await fx.sql.begin(async (tx) => {
        const handle = await queue.submitWith(tx, double(10));
        await queue.close();
        await assert.rejects(handle.result, QueueClosedError);
        await assert.rejects(
          queue.submitWith(tx, double(11)),
          QueueClosedError,
        );
      });
    } finally {
      await queue.close();
    }
  },
});

Deno.test("TaskQueue.submitWith() is a TypeError on a queue whose store is not PostgreSQL", async () => {
  await using tmp = await tempDir();
  const tx = {} as PostgresTransaction;
  {
    await using queue = await TaskQueue.open({
      db: `${tmp.path}/tasks.db`,
      consume: false,
      logger: quiet,
    });
    assert.match(queue.store.kind, /^sqlite-/);
    await assert.rejects(queue.submitWith(tx, { type: "t" }), {
      name: "TypeError",
      message:
        `Cannot submit in a transaction: the queue's store is ${queue.store.kind}, not PostgreSQL`,
    });
  }
  await using memory = await TaskQueue.open({ consume: false, logger: quiet });
  await assert.rejects(memory.submitWith(tx, { type: "t" }), {
    name: "TypeError",
    message:
      "Cannot submit in a transaction: the queue's store is memory, not PostgreSQL",
  });
});
