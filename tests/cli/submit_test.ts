import assert from "node:assert/strict";
import { tempDir } from "../_helpers.ts";
import { cli, ok, status, taskFile } from "./_cli.ts";

interface Exported {
  id: string;
  max_attempts: number;
  idempotency_key: string | null;
  payload: unknown;
}

async function exported(db: string): Promise<Exported[]> {
  return JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as Exported[];
}

Deno.test("cli.ts submit --file commits nothing and names the task's index in the file when one task is bad", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  const tasks: unknown[] = Array.from(
    { length: 1000 },
    (_, i) => ({ type: "noop", payload: { i } }),
  );
  tasks[700] = { type: "noop", maxAttempts: 0 };
  const file = await taskFile(`${dir.path}/tasks.json`, tasks);
  // The database exists, so that status can read it afterwards.
  await ok(["submit", "--db", db, "--type", "noop"]);
  const bad = await cli(["submit", "--db", db, "--file", file]);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, "", "no ids are printed");
  assert.match(bad.stderr, /tasks\[700\]: maxAttempts must be an integer >= 1/);
  assert.equal((await status(db)).total, 1, "none of the file was committed");

  tasks[700] = { type: "noop" };
  await taskFile(file, tasks);
  const good = await ok(["submit", "--db", db, "--file", file]);
  assert.equal(good.trim().split("\n").length, 1000);
  assert.equal((await status(db)).total, 1001);
});

Deno.test("cli.ts submit --format json counts new and deduplicated submissions", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/dup.db`;
  const args = ["submit", "--db", db, "--type", "noop", "--idempotency-key"];
  const first = JSON.parse(await ok([...args, "k", "--format", "json"]));
  assert.equal(first.submitted, 1);
  const again = JSON.parse(await ok([...args, "k", "--json"]));
  assert.deepEqual(again, { submitted: 0, deduplicated: 1, ids: first.ids });
  const [task] = await exported(db);
  assert.equal(task!.idempotency_key, "k");
  assert.equal((await status(db)).total, 1);
});

Deno.test("cli.ts submit takes --max-attempts, and --max-retries N as a deprecated alias for N + 1", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/attempts.db`;
  await ok(["submit", "--db", db, "--type", "noop", "--max-attempts", "5"]);
  const alias = await cli([
    "submit",
    "--db",
    db,
    "--type",
    "noop",
    "--max-retries",
    "0",
  ]);
  assert.equal(alias.code, 0, alias.stderr);
  assert.match(
    alias.stderr,
    /^warning: --max-retries is deprecated and will be removed; use --max-attempts N\+1$/m,
  );
  await ok(["submit", "--db", db, "--type", "noop"], {
    env: { SLUICE_MAX_ATTEMPTS: "7" },
  });
  assert.deepEqual(
    (await exported(db)).map((t) => t.max_attempts),
    [5, 1, 7],
  );
});

Deno.test("cli.ts submit --random --seed writes the same tasks for the same seed", async () => {
  await using dir = await tempDir();
  const payloads = async (db: string): Promise<unknown[]> => {
    await ok([
      "submit",
      "--db",
      db,
      "--random",
      "--count",
      "20",
      "--seed",
      "9",
    ]);
    return (await exported(db)).map((t) => t.payload);
  };
  assert.deepEqual(
    await payloads(`${dir.path}/a.db`),
    await payloads(`${dir.path}/b.db`),
  );
});
