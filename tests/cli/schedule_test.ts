import assert from "node:assert/strict";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import {
  cli,
  type CliProcess,
  type Db,
  dbArgs,
  ok,
  startWorker,
} from "./_cli.ts";

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;

interface Listed {
  name: string;
  cron: string;
  tz: string;
  task: Record<string, unknown>;
  next_tick: string | null;
  last_tick: string | null;
}

async function listed(db: Db): Promise<Listed[]> {
  return JSON.parse(
    await ok(["schedule", "list", ...dbArgs(db), "--json"]),
  ) as Listed[];
}

/** A fresh database of each kind: a SQLite file, and a PostgreSQL schema when SLUICE_TEST_PG is set. */
async function eachDb(
  t: Deno.TestContext,
  dir: string,
  body: (
    db: Db,
    open: () => Promise<TaskStore & AsyncDisposable>,
  ) => Promise<void>,
): Promise<void> {
  await t.step("sqlite", async () => {
    const path = `${dir}/tasks.db`;
    await body(path, () => Promise.resolve(SqliteTaskStore.open(path)));
  });
  if (PG === undefined) return;
  await t.step("postgres", async () => {
    const schema = `sluice_sched_${crypto.randomUUID().slice(0, 8)}`;
    try {
      await body(
        ["--db", PG, "--pg-schema", schema],
        () => PostgresTaskStore.open(PG, { schema }),
      );
    } finally {
      await PostgresTaskStore.drop(PG, { schema });
    }
  });
}

Deno.test("cli.ts schedule adds, lists, replaces and removes schedules, and refuses bad ones", async (t) => {
  await using dir = await tempDir();
  await eachDb(t, dir.path, async (db) => {
    assert.equal(
      await ok(["schedule", "list", ...dbArgs(db)]).catch(() => "none yet"),
      "none yet",
      "list on a database that holds no queue fails",
    );
    const added = JSON.parse(
      await ok([
        "schedule",
        "add",
        "report",
        ...dbArgs(db),
        "--cron",
        "*/5 * * * *",
        "--type",
        "noop",
        "--payload",
        '{"kind":"daily"}',
        "--queue",
        "reports",
        "--tz",
        "Europe/Berlin",
        "--json",
      ]),
    ) as Listed;
    assert.equal(added.name, "report");
    assert.equal(new Date(added.next_tick!).getUTCMinutes() % 5, 0);
    assert.match(
      await ok([
        "schedule",
        "add",
        "beat",
        ...dbArgs(db),
        "--cron",
        "* * * * * *",
        "--type",
        "noop",
      ]),
      /^scheduled beat: next tick \d{4}-\d\d-\d\dT/,
    );
    const all = await listed(db);
    assert.deepEqual(all.map((s) => s.name), ["beat", "report"]);
    assert.deepEqual(all[1]?.task, {
      type: "noop",
      payload: { kind: "daily" },
      queue: "reports",
    });
    assert.equal(all[1]?.tz, "Europe/Berlin");
    assert.equal(all[0]?.tz, "UTC");
    const text = await ok(["schedule", "list", ...dbArgs(db)]);
    assert.match(text, /^beat {2}"\* \* \* \* \* \*" {2}UTC {2}noop {2}next=/m);

    // add replaces by name.
    await ok([
      "schedule",
      "add",
      "report",
      ...dbArgs(db),
      "--cron",
      "0 3 * * *",
      "--type",
      "compute",
    ]);
    const replaced = (await listed(db)).find((s) => s.name === "report");
    assert.equal(replaced?.cron, "0 3 * * *");
    assert.equal(replaced?.tz, "UTC");

    const bad: Array<[string[], RegExp]> = [
      [
        ["--cron", "61 * * * *", "--type", "noop"],
        /cron "61 \* \* \* \*" is not a valid cron expression/,
      ],
      [
        ["--cron", "* * * * *", "--type", "noop", "--tz", "Mars/Base"],
        /tz must be an IANA time zone .*"Mars\/Base"/,
      ],
      [["--cron", "0 0 30 2 *", "--type", "noop"], /never fires/],
      [["--type", "noop"], /schedule add needs --cron/],
      [["--cron", "* * * * *"], /schedule add needs --type/],
      [
        ["--cron", "* * * * *", "--type", "noop", "--payload", "{"],
        /--payload must be JSON/,
      ],
    ];
    for (const [args, message] of bad) {
      const result = await cli([
        "schedule",
        "add",
        "bad",
        ...dbArgs(db),
        ...args,
      ]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    const noName = await cli([
      "schedule",
      "add",
      ...dbArgs(db),
      "--cron",
      "* * * * *",
      "--type",
      "noop",
    ]);
    assert.equal(noName.code, 2);
    assert.match(noName.stderr, /schedule add needs one schedule name/);
    const unknownAction = await cli(["schedule", "pause", ...dbArgs(db)]);
    assert.equal(unknownAction.code, 2);
    assert.match(unknownAction.stderr, /unknown schedule action "pause"/);

    const missing = await cli(["schedule", "remove", "nope", ...dbArgs(db)]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /Cannot remove schedule "nope": no schedule has this name/,
    );
    assert.equal(
      await ok(["schedule", "remove", "beat", ...dbArgs(db), "--json"]),
      '{"removed":"beat"}\n',
    );
    assert.deepEqual((await listed(db)).map((s) => s.name), ["report"]);
    assert.equal(
      await ok(["schedule", "remove", "report", ...dbArgs(db)]),
      "removed report\n",
    );
    assert.equal(
      await ok(["schedule", "list", ...dbArgs(db)]),
      "no schedules\n",
    );
  });
});

/**
 * The demonstration, shortened: a schedule every second and three
 * `start` processes on one database. Every tick that runs runs once (one
 * row, one attempt), and the ticks cover the period: a tick is missed only
 * when no process woke within its second, which the policy then skips.
 */
Deno.test("cli.ts start runs a schedule every second once per tick across 3 processes", async (t) => {
  await using dir = await tempDir();
  await eachDb(t, dir.path, async (db, open) => {
    await ok([
      "schedule",
      "add",
      "beat",
      ...dbArgs(db),
      "--cron",
      "* * * * * *",
      "--type",
      "noop",
    ]);
    const workers: CliProcess[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        workers.push(
          startWorker(db, ["--workers", "1", "--log-level", "info"]),
        );
      }
      for (const worker of workers) {
        await worker.until(
          (o) => /worker_started/.test(o.stdout + o.stderr),
          "the worker to start",
          60_000,
        );
      }
      await using store = await open();
      // Six ticks after all three are up.
      const from = Date.now();
      await waitFor(async () => {
        const tasks = await store.list({ status: "succeeded" });
        return tasks.filter((task) => task.runAt >= from).length >= 6;
      }, { what: "6 ticks run after all workers started", timeoutMs: 60_000 });
      for (const worker of workers) {
        assert.equal((await worker.stop("SIGTERM")).code, 0);
      }
      const tasks = (await store.list())
        .filter((task) => task.idempotencyKey?.startsWith("schedule:beat:"));
      const status = await store.status(Date.now());
      // One row per tick, each inserted once and run once.
      assert.equal(status.totals.submitted, tasks.length);
      const ticks = tasks.map((task) => task.runAt).sort((a, b) => a - b);
      assert.equal(new Set(ticks).size, ticks.length, "no tick twice");
      for (const task of tasks) {
        assert.equal(
          task.idempotencyKey,
          `schedule:beat:${new Date(task.runAt).toISOString()}`,
        );
        assert.equal(task.runAt % 1000, 0);
        assert.equal(task.status, "succeeded");
        assert.equal(task.attempts, 1, `${task.idempotencyKey} ran once`);
      }
      // The ticks cover the period; the few missed (no process awake in
      // that second) are skipped, never run late in a burst.
      const first = ticks[0]!;
      const last = ticks[ticks.length - 1]!;
      const seconds = (last - first) / 1000 + 1;
      assert.ok(ticks.length >= 6);
      assert.ok(
        ticks.length >= seconds * 0.75,
        `${ticks.length} ticks of ${seconds} seconds`,
      );
      const [schedule] = await store.listSchedules!();
      assert.equal(schedule?.lastTick, last);
    } finally {
      for (const worker of workers) await worker[Symbol.asyncDispose]();
    }
  });
});
