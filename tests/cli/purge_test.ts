import assert from "node:assert/strict";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
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
