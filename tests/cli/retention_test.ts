import assert from "node:assert/strict";
import { tempDir } from "../_helpers.ts";
import {
  cli,
  type CliOptions,
  spawn,
  startWorker,
  submitTasks,
  untilStatus,
} from "./_cli.ts";

/** The `worker_started` log line of `start` with `args`. */
async function startedWith(
  db: string,
  args: readonly string[],
  options: CliOptions = {},
): Promise<Record<string, unknown>> {
  await using worker = spawn(["start", "--db", db, ...args], options);
  await worker.until((o) => /"worker_started"/.test(o.stderr), "start");
  const line = worker.stderr.split("\n").find((l) =>
    l.includes('"worker_started"')
  )!;
  const result = await worker.stop();
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(line) as Record<string, unknown>;
}

Deno.test("cli.ts start --keep-succeeded N keeps the N newest succeeded tasks, and SLUICE_KEEP_SUCCEEDED_FOR sets the age", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/keep.db`;
  {
    await using _worker = startWorker(db, ["--keep-succeeded", "2"]);
    await submitTasks(db, "noop", null, 10);
    await untilStatus(
      db,
      (s) => s.totals.succeeded === 10 && s.counts.succeeded === 2,
      "10 succeeded, 2 kept",
    );
  }
  {
    await using _worker = spawn(
      ["start", "--db", db, "--log-level", "warn"],
      { env: { SLUICE_KEEP_SUCCEEDED_FOR: "0s" } },
    );
    await submitTasks(db, "noop", null, 3);
    await untilStatus(
      db,
      (s) => s.totals.succeeded === 13 && s.counts.succeeded === 0,
      "13 succeeded, none kept",
    );
  }
});

Deno.test("cli.ts start --queue-retention gives one queue its own limits, and every other queue keeps its newest N on its own", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/queues.db`;
  await using _worker = startWorker(db, [
    "--queues",
    "default,reports",
    "--keep-succeeded",
    "2",
    "--queue-retention",
    "reports:keep-succeeded=all",
  ]);
  await submitTasks(db, "noop", null, 5);
  await submitTasks(db, "noop", null, 5, ["--queue", "reports"]);
  const s = await untilStatus(
    db,
    (s) => s.totals.succeeded === 10 && s.counts.succeeded === 7,
    "10 succeeded; 2 of default kept, all 5 of reports",
  );
  assert.deepEqual(
    s.queues.map((q) => [q.queue, q.counts.succeeded, q.totals.succeeded]),
    [["default", 2, 5], ["reports", 5, 5]],
  );
});

Deno.test("cli.ts start logs the retention it runs with: the defaults, flags over variables, or off", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/log.db`;
  assert.deepEqual((await startedWith(db, [])).retention, {
    keep_succeeded_for: "24h",
    keep_succeeded: 100000,
    keep_dead_for: "forever",
    keep_dead: "all",
  });
  assert.deepEqual(
    (await startedWith(db, [], {
      env: {
        SLUICE_QUEUE_RETENTION:
          "a:b:keep-dead-for=36h, emails:keep-succeeded=all,emails:keep-dead=7",
      },
    })).retention,
    {
      keep_succeeded_for: "24h",
      keep_succeeded: 100000,
      keep_dead_for: "forever",
      keep_dead: "all",
      queue_retention:
        "a:b:keep-dead-for=36h,emails:keep-succeeded=all,emails:keep-dead=7",
    },
  );
  assert.deepEqual(
    (await startedWith(
      db,
      ["--keep-succeeded-for", "7d", "--keep-dead", "50"],
      {
        env: { SLUICE_KEEP_DEAD: "9", SLUICE_KEEP_DEAD_FOR: "1h30m" },
      },
    )).retention,
    {
      keep_succeeded_for: "7d",
      keep_succeeded: 100000,
      keep_dead_for: "90m",
      keep_dead: 50,
    },
  );
  assert.equal((await startedWith(db, ["--no-retention"])).retention, "off");
  assert.equal(
    (await startedWith(db, [], { env: { SLUICE_RETENTION: "off" } }))
      .retention,
    "off",
  );
});

Deno.test("cli.ts start and run refuse bad retention settings with exit 2, naming the flag or variable", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/bad.db`;
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ["start", "--keep-succeeded-for", "10x"],
      {},
      /--keep-succeeded-for must be a duration such as 30s, 15m, 24h or 7d \(or forever\), got "10x"/,
    ],
    [
      ["start"],
      { SLUICE_KEEP_DEAD: "-1" },
      /SLUICE_KEEP_DEAD must be an integer >= 0 or all, got "-1"/,
    ],
    [
      ["start", "--keep-dead-for", "36500001d"],
      {},
      /--keep-dead-for must be from 0 to 36500d/,
    ],
    [
      [
        "run",
        "--tasks",
        "none.json",
        "--no-retention",
        "--keep-succeeded",
        "5",
      ],
      {},
      /--keep-succeeded cannot take effect with --no-retention/,
    ],
    [
      ["start", "--keep-dead", "5"],
      { SLUICE_RETENTION: "off" },
      /--keep-dead cannot take effect with SLUICE_RETENTION=off/,
    ],
    [
      ["start", "--no-retention", "--retention", "on"],
      {},
      /--no-retention is --retention off: it cannot go with --retention on/,
    ],
    [
      ["start", "--queue-retention", "reports:keep-forever=1d"],
      {},
      /--queue-retention must be QUEUE:SETTING=VALUE items, comma-separated, SETTING one of keep-succeeded-for, keep-succeeded, keep-dead-for, keep-dead, got "reports:keep-forever=1d"/,
    ],
    [
      ["start"],
      { SLUICE_QUEUE_RETENTION: "reports:keep-dead=many" },
      /SLUICE_QUEUE_RETENTION reports:keep-dead must be an integer >= 0 or all, got "many"/,
    ],
    [
      ["start", "--no-retention", "--queue-retention", "a:keep-dead=1"],
      {},
      /--queue-retention cannot take effect with --no-retention/,
    ],
    [
      ["run", "--tasks", "none.json", "--retention", "maybe"],
      {},
      /--retention must be one of on, off/,
    ],
  ];
  for (const [args, env, message] of cases) {
    const result = await cli([...args, "--db", db], { env, cwd: dir.path });
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
});
