import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { tempDir } from "../_helpers.ts";
import { cli, ok, startWorker, taskFile, untilStatus } from "./_cli.ts";

const HOUR = 3_600_000;

/** Each stored task's `run_at` and status, by id. */
function stored(db: string): Map<string, { runAt: number; status: string }> {
  const reader = new DatabaseSync(db, { readOnly: true });
  try {
    const rows = reader.prepare("SELECT id, run_at, status FROM tasks")
      .all() as { id: string; run_at: number; status: string }[];
    return new Map(
      rows.map((row) => [row.id, { runAt: row.run_at, status: row.status }]),
    );
  } finally {
    reader.close();
  }
}

/** The ids `submit` printed, one a line. */
function ids(stdout: string): string[] {
  return stdout.split("\n").filter((line) => line !== "");
}

Deno.test("cli.ts submit --delay stores every task due that long after the command started", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/delay.db`;
  const before = Date.now();
  const typed = ids(
    await ok(["submit", "--db", db, "--type", "noop", "--delay", "1h"]),
  );
  const random = ids(
    await ok([
      "submit",
      "--db",
      db,
      "--random",
      "--count",
      "3",
      "--delay",
      "1h",
    ]),
  );
  const after = Date.now();
  const tasks = stored(db);
  assert.equal(tasks.size, 4);
  for (const id of [...typed, ...random]) {
    const runAt = tasks.get(id)!.runAt;
    assert.ok(
      runAt >= before + HOUR && runAt <= after + HOUR,
      `${runAt} in [${before + HOUR}, ${after + HOUR}]`,
    );
  }
  // One `now` for the whole command: every task of it is due at once.
  assert.equal(new Set(random.map((id) => tasks.get(id)!.runAt)).size, 1);
});

Deno.test("cli.ts submit --run-at stores the instant given, whatever its zone", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/run_at.db`;
  const [utc] = ids(
    await ok([
      "submit",
      "--db",
      db,
      "--type",
      "noop",
      "--payload",
      "1",
      "--run-at",
      "2030-01-01T00:00:00Z",
    ]),
  );
  const [offset] = ids(
    await ok([
      "submit",
      "--db",
      db,
      "--type",
      "noop",
      "--payload",
      "2",
      "--run-at",
      "2030-01-01T01:00:00+01:00",
    ]),
  );
  const [past] = ids(
    await ok([
      "submit",
      "--db",
      db,
      "--type",
      "noop",
      "--payload",
      "3",
      "--run-at",
      "2000-02-29T12:30:00.250-05:30",
    ]),
  );
  const tasks = stored(db);
  const instant = Date.UTC(2030, 0, 1);
  assert.equal(tasks.get(utc!)!.runAt, instant);
  assert.equal(tasks.get(offset!)!.runAt, instant);
  assert.equal(tasks.get(past!)!.runAt, Date.UTC(2000, 1, 29, 18, 0, 0, 250));
  const exported = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as { id: string; run_at: string }[];
  assert.equal(
    exported.find((task) => task.id === utc)!.run_at,
    "2030-01-01T00:00:00.000Z",
  );
});

Deno.test("cli.ts submit --file gives the flag's time to tasks without a runAt of their own", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/file.db`;
  const own = Date.UTC(2031, 5, 1);
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "noop", payload: 1, runAt: own },
    { type: "noop", payload: 2 },
  ]);
  const [kept, given] = ids(
    await ok([
      "submit",
      "--db",
      db,
      "--file",
      file,
      "--run-at",
      "2030-01-01T00:00:00Z",
    ]),
  );
  const tasks = stored(db);
  assert.equal(tasks.get(kept!)!.runAt, own);
  assert.equal(tasks.get(given!)!.runAt, Date.UTC(2030, 0, 1));
});

Deno.test("cli.ts start does not run a task submitted with --delay before it is due", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/start.db`;
  const [delayed] = ids(
    await ok(["submit", "--db", db, "--type", "noop", "--delay", "1h"]),
  );
  await using worker = startWorker(db, ["--poll-interval-ms", "20"]);
  // The worker is polling once it has run a task submitted after it
  // started; the delayed task was due for none of those polls.
  const [due] = ids(await ok(["submit", "--db", db, "--type", "noop"]));
  await untilStatus(db, (s) => s.counts.succeeded === 1, "the due task ran");
  assert.equal((await worker.stop("SIGTERM")).code, 0);
  const tasks = stored(db);
  assert.equal(tasks.get(due!)!.status, "succeeded");
  assert.equal(tasks.get(delayed!)!.status, "queued");
});

Deno.test("cli.ts submit refuses a bad --delay or --run-at, or both, with exit 2 and the value", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/bad.db`;
  const cases: [string[], RegExp][] = [
    [["--delay", "soon"], /--delay must be a duration .*"soon"/],
    [["--delay", "-1s"], /--delay .*"-1s"/],
    [
      ["--run-at", "2030-01-01T00:00:00"],
      /--run-at .*zone.*"2030-01-01T00:00:00"/,
    ],
    [["--run-at", "2030-01-01"], /--run-at .*zone.*"2030-01-01"/],
    [["--run-at", "tomorrow"], /--run-at .*"tomorrow"/],
    [["--run-at", "2030-02-30T00:00:00Z"], /--run-at .*"2030-02-30T00:00:00Z"/],
    [
      ["--run-at", "2030-01-01T00:00:00+24:00"],
      /--run-at .*"2030-01-01T00:00:00\+24:00"/,
    ],
    [
      ["--run-at", "+275760-09-13T00:00:01Z"],
      /--run-at must be from .* to \+275760-09-13T00:00:00Z, got "\+275760-09-13T00:00:01Z"/,
    ],
    [
      ["--delay", "1h", "--run-at", "2030-01-01T00:00:00Z"],
      /--delay or --run-at, not both/,
    ],
  ];
  for (const [flags, message] of cases) {
    const result = await cli([
      "submit",
      "--db",
      db,
      "--type",
      "noop",
      ...flags,
    ]);
    assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  // Refused before the database is opened.
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
});
