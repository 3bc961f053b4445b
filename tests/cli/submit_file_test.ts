import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { tempDir, waitFor } from "../_helpers.ts";
import { cli, ok, spawn, status, taskFile } from "./_cli.ts";

/** The ids in a database, in insertion order. */
function storedIds(db: string): string[] {
  const reader = new DatabaseSync(db, { readOnly: true });
  try {
    return (reader.prepare("SELECT id FROM tasks ORDER BY rowid").all() as {
      id: string;
    }[]).map((row) => row.id);
  } finally {
    reader.close();
  }
}

/** `n` noop tasks, each with its own payload. */
function noops(n: number, from = 0): { type: string; payload: unknown }[] {
  return Array.from(
    { length: n },
    (_, i) => ({ type: "noop", payload: { i: from + i } }),
  );
}

Deno.test("cli.ts submit --file streams a file of thousands of tasks and prints the ids stored, in order", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  await ok(["submit", "--db", db, "--type", "noop", "--idempotency-key", "k"]);
  const [held] = storedIds(db);
  const tasks: unknown[] = noops(5000);
  // Strings that look like the array's own syntax must not split items.
  tasks[1] = { type: "noop", payload: { s: 'a],{"b":[}\\"' } };
  tasks[2000] = { type: "noop", idempotencyKey: "k" }; // already stored
  tasks[3000] = { type: "noop", idempotencyKey: "f" };
  tasks[4999] = { type: "noop", idempotencyKey: "f" }; // repeated in the file
  // Spaces between items, so that chunks end anywhere in the text.
  await Deno.writeTextFile(
    `${dir.path}/tasks.json`,
    "[\n" + tasks.map((t) => JSON.stringify(t)).join(" ,\n ") + "\n]\n",
  );
  const printed =
    (await ok(["submit", "--db", db, "--file", `${dir.path}/tasks.json`]))
      .trim().split("\n");
  assert.equal(printed.length, 5000);
  assert.equal(printed[2000], held, "a stored key answers with its task");
  assert.equal(printed[4999], printed[3000], "a repeated key with the first");
  const stored = storedIds(db);
  assert.deepEqual(
    stored.slice(1),
    printed.filter((_, i) => i !== 2000 && i !== 4999),
  );
  const after = await status(db);
  assert.equal(after.total, 4999);
  assert.equal(after.counts.queued, 4999);
  const exported = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  ) as { id: string; payload: unknown }[];
  assert.deepEqual(
    exported.find((t) => t.id === printed[1])?.payload,
    { s: 'a],{"b":[}\\"' },
  );
});

Deno.test("cli.ts submit --file stores nothing and prints no id when a task near the end of a large file is bad", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  const tasks: unknown[] = noops(20_000);
  tasks[19_998] = { type: "noop", maxAttempts: 0 };
  const file = await taskFile(`${dir.path}/tasks.json`, tasks);
  const bad = await cli(["submit", "--db", db, "--file", file]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, "");
  assert.match(
    bad.stderr,
    /tasks\[19998\]: maxAttempts must be an integer >= 1/,
  );
  // An item that is neither kind of task, and text that is not JSON.
  tasks[19_998] = { size: "1x1" };
  await taskFile(file, tasks);
  const unknown = await cli(["submit", "--db", db, "--file", file, "--json"]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, "");
  assert.match(unknown.stderr, /Cannot read task 19998: expected/);
  // A runAt that is neither epoch ms nor a time with its zone.
  tasks[19_998] = { type: "noop", runAt: "2030-01-01 09:00" };
  await taskFile(file, tasks);
  const when = await cli(["submit", "--db", db, "--file", file]);
  assert.equal(when.code, 1);
  assert.equal(when.stdout, "");
  assert.match(
    when.stderr,
    /Cannot read task 19998: runAt must be epoch ms or an ISO 8601 time with its zone .*"2030-01-01 09:00"/,
  );
  await Deno.writeTextFile(
    file,
    JSON.stringify(noops(20_000)).slice(0, -1) + ",{nope}]",
  );
  const broken = await cli(["submit", "--db", db, "--file", file]);
  assert.equal(broken.code, 1);
  assert.equal(broken.stdout, "");
  assert.match(
    broken.stderr,
    /Cannot read task file .*: task 20000 is not JSON/,
  );
  await Deno.writeTextFile(file, JSON.stringify(noops(300)).slice(0, -1));
  const open = await cli(["submit", "--db", db, "--file", file]);
  assert.match(open.stderr, /the array is not closed/);
  const after = await status(db);
  assert.equal(after.total, 1, "none of the files was committed");
  assert.equal(after.counts.queued, 1);
});

Deno.test("cli.ts submit --file --format json prints the same object as before", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  const file = await taskFile(`${dir.path}/tasks.json`, [
    { type: "noop", idempotencyKey: "a" },
    { type: "noop", idempotencyKey: "a" },
    { type: "noop" },
  ]);
  const text = await ok(["submit", "--db", db, "--file", file, "--json"]);
  const parsed = JSON.parse(text);
  assert.deepEqual(Object.keys(parsed), ["ids", "submitted", "deduplicated"]);
  assert.deepEqual([parsed.submitted, parsed.deduplicated], [2, 1]);
  assert.equal(parsed.ids[1], parsed.ids[0]);
  assert.deepEqual(storedIds(db), [parsed.ids[0], parsed.ids[2]]);
  const empty = await taskFile(`${dir.path}/empty.json`, []);
  assert.deepEqual(
    JSON.parse(await ok(["submit", "--db", db, "--file", empty, "--json"])),
    { ids: [], submitted: 0, deduplicated: 0 },
  );
});

Deno.test("cli.ts submit --file prints no id and shows no task to readers until the whole file has committed", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  const fifo = `${dir.path}/tasks.fifo`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, "mkfifo");
  await using submit = spawn([
    "submit",
    "--db",
    db,
    "--file",
    fifo,
    "--log-level",
    "warn",
  ]);
  const writer = await Deno.open(fifo, { write: true });
  const encoder = new TextEncoder();
  const write = async (text: string): Promise<void> => {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) {
      at += await writer.write(bytes.subarray(at));
    }
  };
  try {
    // Several slices: the transaction is open once the first is inserted.
    await write(
      "[" + noops(1000).map((t) => JSON.stringify(t)).join(",") + ",",
    );
    const probe = new DatabaseSync(db, { timeout: 0 });
    try {
      await waitFor(() => {
        try {
          probe.exec("BEGIN IMMEDIATE");
          probe.exec("ROLLBACK");
          return false;
        } catch {
          return true; // the submitting process holds the write lock
        }
      }, { what: "the file's transaction to be open" });
      assert.equal(submit.stdout, "", "no id is printed before the commit");
      const { n } = probe.prepare("SELECT count(*) AS n FROM tasks").get() as {
        n: number;
      };
      assert.equal(n, 1, "readers see none of the file yet");
    } finally {
      probe.close();
    }
    await write(
      noops(1000, 1000).map((t) => JSON.stringify(t)).join(",") + "]",
    );
  } finally {
    writer.close();
  }
  const { code, stdout, stderr } = await submit.exit();
  assert.equal(code, 0, stderr);
  const printed = stdout.trim().split("\n");
  assert.equal(printed.length, 2000);
  assert.deepEqual(storedIds(db).slice(1), printed);
});
