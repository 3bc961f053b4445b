import assert from "node:assert/strict";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir } from "../_helpers.ts";
import { cli, type Db, dbArgs, ok, status, taskFile } from "./_cli.ts";

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

interface Summary {
  dry_run: boolean;
  succeeded: number;
  dead: number;
}

/** Every task, every field, as `export` prints them. */
async function everything(db: Db): Promise<string> {
  return await ok(["export", ...dbArgs(db), "--format", "json"]);
}

/** Counts and totals: what `status` shows that does not move with the clock. */
async function counts(db: Db): Promise<unknown> {
  const s = await status(db);
  return { counts: s.counts, totals: s.totals, total: s.total };
}

async function purge(db: Db, ...args: string[]): Promise<Summary> {
  return JSON.parse(
    await ok(["purge", ...dbArgs(db), "--json", ...args]),
  ) as Summary;
}

/**
 * A database with 6 succeeded, 3 dead and 2 queued tasks: a task file run
 * to the end, then tasks submitted that nothing runs.
 */
async function finishedTasks(db: Db, dir: string): Promise<void> {
  const file = await taskFile(`${dir}/tasks.json`, [
    ...Array.from({ length: 6 }, (_, i) => ({ type: "noop", payload: { i } })),
    ...Array.from({ length: 3 }, (_, i) => ({
      type: "fail",
      payload: { error_message: `boom ${i}` },
    })),
  ]);
  const run = await cli([
    "run",
    "--tasks",
    file,
    ...dbArgs(db),
    "--workers",
    "1",
    "--log-level",
    "silent",
    "--no-retention",
  ]);
  assert.equal(run.code, 1, `3 tasks are dead: ${run.stderr}`);
  await ok(["submit", ...dbArgs(db), "--type", "noop", "--count", "2"]);
}

async function dryRunThenPurge(db: Db, dir: string): Promise<void> {
  await finishedTasks(db, dir);
  const before = await everything(db);
  const countsBefore = await counts(db);

  const dry = await purge(db, "--keep", "2", "--dry-run");
  assert.deepEqual(dry, { dry_run: true, succeeded: 4, dead: 1 });
  assert.equal(await everything(db), before, "a dry run changes no task");
  assert.deepEqual(await counts(db), countsBefore);

  const done = await purge(db, "--keep", "2");
  assert.deepEqual(done, { ...dry, dry_run: false }, "what the dry run said");
  const after = await status(db);
  assert.deepEqual(after.counts, {
    queued: 2,
    claimed: 0,
    running: 0,
    succeeded: 2,
    failed: 0,
    dead: 2,
  });
  assert.deepEqual(
    after.totals,
    (countsBefore as { totals: unknown }).totals,
    "the totals are history: a purge does not lower them",
  );
  assert.deepEqual(await purge(db, "--keep", "2", "--dry-run"), {
    dry_run: true,
    succeeded: 0,
    dead: 0,
  });

  // The two kept of each status are the most recently finished.
  const kept = (JSON.parse(await everything(db)) as {
    status: string;
    payload: { i?: number; error_message?: string };
  }[]).filter((t) => t.status !== "queued");
  assert.deepEqual(
    kept.map((t) => t.payload.i ?? t.payload.error_message).sort(),
    [4, 5, "boom 1", "boom 2"].sort(),
  );

  const dead = await purge(db, "--status", "dead", "--older-than", "0s");
  assert.deepEqual(dead, { dry_run: false, succeeded: 0, dead: 2 });
  assert.equal((await status(db)).counts.succeeded, 2);
}

Deno.test("cli.ts purge --dry-run changes nothing, and a purge deletes exactly what it counted", async () => {
  await using dir = await tempDir();
  await dryRunThenPurge(`${dir.path}/tasks.db`, dir.path);
});

Deno.test({
  name:
    "cli.ts purge --dry-run changes nothing, and a purge deletes exactly what it counted (PostgreSQL)",
  ignore: PG === undefined,
  fn: async () => {
    await using dir = await tempDir();
    const schema = `sluice_purge_${crypto.randomUUID().slice(0, 8)}`;
    try {
      await dryRunThenPurge(["--db", PG!, "--pg-schema", schema], dir.path);
    } finally {
      await PostgresTaskStore.drop(PG!, { schema });
    }
  },
});

Deno.test("cli.ts purge deletes in batches until none is left", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/many.db`;
  const file = await taskFile(
    `${dir.path}/many.json`,
    Array.from({ length: 1234 }, (_, i) => ({ type: "noop", payload: { i } })),
  );
  await ok([
    "run",
    "--tasks",
    file,
    "--db",
    db,
    "--log-level",
    "silent",
    "--no-retention",
  ]);
  // More than two batches of 500.
  assert.deepEqual(await purge(db, "--keep", "0"), {
    dry_run: false,
    succeeded: 1234,
    dead: 0,
  });
  assert.equal((await status(db)).total, 0);
  assert.equal(
    await ok(["purge", "--db", db, "--keep", "0", "--dry-run"]),
    "would delete 0 succeeded, 0 dead\n",
  );
});

/**
 * Three succeeded tasks in each of the queues `a` and `b` and one queued
 * in the default queue, written through a store.
 */
async function tasksInQueues(store: TaskStore): Promise<void> {
  const now = Date.now();
  const tasks = ["a", "b"].flatMap((queue) =>
    [0, 1, 2].map((i) => ({
      id: `${queue}${i}`,
      type: "noop",
      idempotencyKey: null,
      payload: null,
      maxAttempts: 1,
      runAt: now,
      queue,
      claim: true,
    }))
  );
  const { inserted } = await store.commit({
    settles: [],
    inserts: [...tasks, {
      ...tasks[0]!,
      id: "q",
      queue: "default",
      claim: false,
    }],
    claimDue: 0,
    leaseMs: 60_000,
    now,
  });
  for (const [i, { record }] of inserted.slice(0, 6).entries()) {
    // One commit each, so that each queue's finish order is its id order.
    await store.commit({
      settles: [{
        id: record.id,
        version: record.version,
        outcome: { kind: "succeeded", result: null, outputKey: null },
      }],
      inserts: [],
      claimDue: 0,
      leaseMs: 60_000,
      now: now + 1 + i,
    });
  }
}

async function purgeOneQueue(db: Db, store: TaskStore): Promise<void> {
  await tasksInQueues(store);
  assert.deepEqual(await purge(db, "--keep", "1", "--dry-run"), {
    dry_run: true,
    succeeded: 4,
    dead: 0,
  }, "--keep counts each queue on its own");
  assert.deepEqual(await purge(db, "--keep", "1", "--queue", "a"), {
    dry_run: false,
    succeeded: 2,
    dead: 0,
  });
  assert.deepEqual(
    (await store.list()).map((t) => t.id).sort(),
    ["a2", "b0", "b1", "b2", "q"],
    "the newest of a is kept, and b is not touched",
  );
  const none = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
  assert.deepEqual(
    (await status(db)).queues.map((q) => [q.queue, q.counts]),
    [
      ["a", { ...none, succeeded: 1 }],
      ["b", { ...none, succeeded: 3 }],
      ["default", { ...none, queued: 1 }],
    ],
  );
  const text = await ok(["status", ...dbArgs(db), "--running", "0"]);
  assert.match(
    text,
    /queue +queued +running +succeeded +failed +dead\n +a +0 +0 +1 +0 +0\n +b +0 +0 +3 +0 +0\n +default +1 +0 +0 +0 +0\n/,
  );
  await ok(["pause", ...dbArgs(db), "b"]);
  assert.equal(
    await ok(["queues", ...dbArgs(db)]),
    [
      "queue    state        queued   running succeeded    failed      dead",
      "a        running           0         0         1         0         0",
      "b        paused            0         0         3         0         0",
      "default  running           1         0         0         0         0",
      "",
    ].join("\n"),
  );
  const bad = await cli(["purge", ...dbArgs(db), "--keep", "1", "--queue", ""]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--queue must have 1 to 128 characters, got ""/);
}

Deno.test("cli.ts purge --queue deletes one queue's tasks, --keep keeps N of each queue, and status and queues count each queue", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/queues.db`;
  await using store = SqliteTaskStore.open(db);
  await purgeOneQueue(db, store);
});

Deno.test({
  name:
    "cli.ts purge --queue deletes one queue's tasks, --keep keeps N of each queue, and status and queues count each queue (PostgreSQL)",
  ignore: PG === undefined,
  fn: async () => {
    const schema = `sluice_purgeq_${crypto.randomUUID().slice(0, 8)}`;
    const store = await PostgresTaskStore.open(PG!, { schema });
    try {
      await purgeOneQueue(["--db", PG!, "--pg-schema", schema], store);
    } finally {
      await store.close();
      await PostgresTaskStore.drop(PG!, { schema });
    }
  },
});

Deno.test("cli.ts purge needs --older-than or --keep, and checks its values before opening anything", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/none.db`;
  const cases: [string[], RegExp][] = [
    [[], /purge needs --older-than DURATION or --keep N/],
    [["--older-than", "7days"], /--older-than must be a duration .*"7days"/],
    [["--keep", "-1"], /--keep must be an integer from 0/],
    [
      ["--keep", "1", "--status", "failed"],
      /--status must be one of succeeded, dead, all, got "failed"/,
    ],
  ];
  for (const [args, message] of cases) {
    const result = await cli(["purge", "--db", db, ...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const missing = await cli(["purge", "--db", db, "--keep", "1"]);
  assert.equal(missing.code, 1, "no queue there");
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
});
