import assert from "node:assert/strict";
import { tempDir } from "../_helpers.ts";
import {
  cli,
  ok,
  startWorker,
  status,
  submitTasks,
  untilStatus,
} from "./_cli.ts";

/** Whether a line of `text` holds a control character or a bidi override. */
function hasControl(text: string): boolean {
  return text.split("\n").some((line) => /[\p{Cc}\u202e]/u.test(line));
}

/** Submits `fail` tasks with these messages and lets a worker kill them. */
async function deadTasks(db: string, messages: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const message of messages) {
    ids.push(...await submitTasks(db, "fail", { error_message: message }));
  }
  await using worker = startWorker(db, ["--workers", "1"]);
  await untilStatus(
    db,
    (s) => s.dead_letters === messages.length,
    `${messages.length} dead tasks`,
  );
  assert.equal((await worker.stop("SIGTERM")).code, 0);
  return ids;
}

Deno.test("cli.ts dlq lists, shows and requeues a dead task", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/dlq.db`;
  const [id] = await deadTasks(db, ["broken on purpose"]);

  const listed = JSON.parse(await ok(["dlq", "list", "--db", db, "--json"]));
  assert.equal(listed.length, 1);
  assert.equal(listed[0].id, id);
  assert.equal(listed[0].error_class, "permanent");
  assert.match(listed[0].last_error, /broken on purpose/);
  assert.match(await ok(["dlq", "list", "--db", db]), new RegExp(id!));

  const shown = JSON.parse(
    await ok(["dlq", "show", id!, "--db", db, "--format", "json"]),
  );
  assert.deepEqual(shown.payload, { error_message: "broken on purpose" });
  assert.equal(shown.status, "dead");
  const missing = await cli(["dlq", "show", "nope", "--db", db]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /error: Cannot show task nope/);

  const requeued = JSON.parse(
    await ok(["dlq", "requeue", id!, "--db", db, "--json"]),
  );
  assert.equal(requeued.requeued, 1);
  const after = await status(db);
  assert.equal(after.dead_letters, 0);
  assert.equal(after.counts.queued, 1);
  assert.match(await ok(["dlq", "requeue", "--all", "--db", db]), /requeued 0/);
});

Deno.test("cli.ts dlq requeue refuses unknown or live ids, names them, and requeues nothing", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/refuse.db`;
  const [dead] = await deadTasks(db, ["dead one"]);
  const queued = (await ok(["submit", "--db", db, "--type", "noop"])).trim();

  const result = await cli([
    "dlq",
    "requeue",
    dead!,
    "bogus-id",
    queued,
    "--db",
    db,
  ]);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /bogus-id \(no such task\)/);
  assert.match(result.stderr, new RegExp(`${queued} \\(queued\\)`));
  assert.match(result.stderr, /nothing was requeued/);
  assert.doesNotMatch(result.stderr, new RegExp(dead!));
  assert.equal((await status(db)).dead_letters, 1, "the valid id stays dead");

  const alone = await cli(["dlq", "requeue", "bogus-id", "--db", db]);
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /^error: Cannot requeue tasks: .*bogus-id/);

  // The same id twice is one task.
  assert.match(
    await ok(["dlq", "requeue", dead!, dead!, "--db", db]),
    /^requeued 1$/m,
  );
});

Deno.test("cli.ts dlq list and show keep stored control characters off the terminal; --json keeps them", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/hostile.db`;
  const message =
    "red \x1b[31malert\x1b[0m\nsecond line\rthird\tcell\u202eevil";
  const [id] = await deadTasks(db, [message]);

  const list = await ok(["dlq", "list", "--db", db]);
  assert.equal(list.split("\n").length, 2, "one task, one line");
  assert.ok(!hasControl(list), list);
  assert.match(
    list,
    /red \[31malert\[0m\\nsecond line\\rthird\\tcellevil\n$/,
  );

  const show = await ok(["dlq", "show", id!, "--db", db]);
  assert.ok(!hasControl(show), show);
  const lastError = show.split("\n").find((l) => l.startsWith("last_error"));
  assert.match(lastError!, /alert\[0m\\nsecond line\\rthird\\tcellevil$/);

  const json = JSON.parse(await ok(["dlq", "list", "--db", db, "--json"]));
  assert.equal(json[0].last_error, `PermanentError: ${message}`);
  const shown = JSON.parse(
    await ok(["dlq", "show", id!, "--db", db, "--json"]),
  );
  assert.equal(shown.payload.error_message, message);
});
