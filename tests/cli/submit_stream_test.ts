import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { tempDir } from "../_helpers.ts";
import { cli, ok, spawn, status } from "./_cli.ts";

Deno.test("cli.ts submit --random prints each slice's ids once it has committed, before the last is made", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/stream.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  // Far more tasks than can be written while the test looks.
  await using submit = spawn([
    "submit",
    "--db",
    db,
    "--random",
    "--count",
    "5000000",
    "--log-level",
    "warn",
  ]);
  await submit.until((o) => o.stdout.includes("\n"), "the first ids");
  // Hold the write lock: the submitting process cannot commit another
  // slice, so it is still running, and everything it printed is in the
  // database.
  const lock = new DatabaseSync(db, { timeout: 30_000 });
  try {
    lock.exec("BEGIN IMMEDIATE");
    const stored = new Set(
      (lock.prepare("SELECT id FROM tasks").all() as { id: string }[])
        .map((row) => row.id),
    );
    // Blocked on the lock, the submitter prints the ids of every slice it
    // committed (at most the one that committed as the lock was taken may
    // still be on its way), long before its last slice: what this test
    // has read of its output catches up with what the database holds.
    // Complete lines only: a read may end inside an id.
    const lines = (text: string): string[] =>
      text.slice(0, text.lastIndexOf("\n") + 1).split("\n")
        .filter((l) => l !== "");
    await submit.until(
      (o) => lines(o.stdout).length >= stored.size - 1 - 1024,
      `the ids of the ${stored.size - 1} tasks committed`,
    );
    const printed = lines(submit.stdout);
    assert.ok(printed.length > 0 && printed.length < 5_000_000);
    for (const id of printed) assert.ok(stored.has(id), `${id} is stored`);
    submit.child.kill("SIGKILL");
    await submit.exit();
    lock.exec("ROLLBACK");
  } finally {
    lock.close();
  }
});

Deno.test("cli.ts submit --json is one object whatever --count: the ids, then the counts", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/json.db`;
  const stdout = await ok([
    "submit",
    "--db",
    db,
    "--random",
    "--count",
    "3000",
    "--json",
  ]);
  const printed = JSON.parse(stdout) as {
    ids: string[];
    submitted: number;
    deduplicated: number;
  };
  assert.deepEqual(Object.keys(printed), ["ids", "submitted", "deduplicated"]);
  assert.equal(printed.ids.length, 3000);
  assert.equal(new Set(printed.ids).size, 3000);
  assert.equal(printed.submitted, 3000);
  assert.equal(printed.deduplicated, 0);
  assert.equal((await status(db)).total, 3000);
  const text = await ok([
    "submit",
    "--db",
    db,
    "--type",
    "noop",
    "--count",
    "2500",
  ]);
  assert.equal(text.split("\n").filter((l) => l !== "").length, 2500);
  assert.equal((await status(db)).total, 5500);
});

Deno.test("cli.ts submit --dedupe-for deduplicates the key within the window only", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/window.db`;
  const args = ["submit", "--db", db, "--type", "noop", "--json"];
  const long = JSON.parse(
    await ok([...args, "--idempotency-key", "k", "--dedupe-for", "1h"]),
  );
  const again = JSON.parse(await ok([...args, "--idempotency-key", "k"]));
  assert.deepEqual(again, { ids: long.ids, submitted: 0, deduplicated: 1 });

  // A 1 ms window has passed by the time the next process submits.
  const short = JSON.parse(
    await ok([...args, "--idempotency-key", "s", "--dedupe-for", "1ms"]),
  );
  const next = JSON.parse(await ok([...args, "--idempotency-key", "s"]));
  assert.equal(next.submitted, 1);
  assert.notEqual(next.ids[0], short.ids[0]);
  const tasks = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as {
    id: string;
    idempotency_key: string | null;
    dedupe_until: string | null;
  }[];
  const byId = new Map(tasks.map((t) => [t.id, t]));
  assert.equal(byId.get(short.ids[0])!.idempotency_key, null, "taken over");
  assert.equal(byId.get(next.ids[0])!.idempotency_key, "s");
  assert.ok(byId.get(long.ids[0])!.dedupe_until !== null);

  for (
    const [extra, message] of [
      [["--dedupe-for", "1h"], /--dedupe-for needs --idempotency-key/],
      [
        ["--idempotency-key", "x", "--dedupe-for", "0"],
        /--dedupe-for must be from 1ms to 36500d, got "0"/,
      ],
      [
        ["--idempotency-key", "x", "--dedupe-for", "soon"],
        /--dedupe-for must be a duration such as 30s, 15m, 24h or 7d, got "soon"/,
      ],
    ] as const
  ) {
    const result = await cli([...args, ...extra]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, message);
  }
});
