/**
 * The CLI's named queues: `submit --queue/--priority`, `start --queues`
 * with handler modules of their own, `pause`, `resume`, `queues`,
 * `cancel` and `delete`, on SQLite and (when SLUICE_TEST_PG is set)
 * PostgreSQL. Waits are on the database's state, never on time.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../../lib/store/store.ts";
import { tempDir, waitFor } from "../_helpers.ts";
import { lines } from "../queue/_support.ts";
import { cli, type Db, dbArgs, ok, startWorker } from "./_cli.ts";

const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;
const EMAILS = fileURLToPath(
  new URL("../fixtures/fleet_handlers.ts", import.meta.url),
);
const IMAGES = fileURLToPath(
  new URL("../fixtures/fleet_images.ts", import.meta.url),
);

/** A fresh database of each kind, with a store on it for assertions. */
async function eachDb(
  t: Deno.TestContext,
  dir: string,
  body: (db: Db, store: TaskStore) => Promise<void>,
): Promise<void> {
  await t.step("sqlite", async () => {
    const path = `${dir}/tasks.db`;
    // A writer creates the file first; the test's store reads alongside.
    await ok(["submit", "--db", path, "--type", "noop", "--delay", "1d"]);
    const store = SqliteTaskStore.open(path);
    try {
      await body(path, store);
    } finally {
      await store.close();
    }
  });
  if (PG === undefined) return;
  await t.step("postgres", async () => {
    const schema = `sluice_cliq_${crypto.randomUUID().slice(0, 8)}`;
    const store = await PostgresTaskStore.open(PG, { schema });
    try {
      await body(["--db", PG, "--pg-schema", schema], store);
    } finally {
      await store.close();
      await PostgresTaskStore.drop(PG, { schema });
    }
  });
}

async function submit(db: Db, args: readonly string[]): Promise<string[]> {
  return (await ok(["submit", ...dbArgs(db), ...args])).trim().split("\n");
}

Deno.test("two start processes with different --queues and --handlers on one database each run only their own tasks, and none is dead-lettered", async (t) => {
  await using dir = await tempDir();
  await eachDb(t, dir.path, async (db, store) => {
    const out = `${dir.path}/${crypto.randomUUID()}`;
    await Deno.mkdir(out);
    const payload = (key: string): string => JSON.stringify({ dir: out, key });
    const mail: string[] = [];
    const pics: string[] = [];
    for (let i = 0; i < 5; i++) {
      mail.push(
        ...await submit(db, [
          "--queue",
          "emails",
          "--type",
          "sendEmail",
          "--payload",
          payload(`m${i}`),
        ]),
      );
      pics.push(
        ...await submit(db, [
          "--queue",
          "images",
          "--type",
          "resize",
          "--payload",
          payload(`p${i}`),
        ]),
      );
    }
    // A task of the images queue that the images module does not export.
    const [stray] = await submit(db, [
      "--queue",
      "images",
      "--type",
      "sendEmail",
      "--payload",
      payload("stray"),
    ]);
    await using a = startWorker(db, [
      "--queues",
      "emails",
      "--handlers",
      EMAILS,
    ]);
    await using b = startWorker(db, [
      "--queues",
      "images,images",
      "--handlers",
      IMAGES,
    ]);
    await waitFor(async () => {
      const done = await Promise.all(
        [...mail, ...pics].map((id) => store.get(id)),
      );
      return done.every((r) => r?.status === "succeeded");
    }, { what: "every task to succeed", timeoutMs: 60_000 });
    const runs = await lines(`${out}/runs.log`);
    assert.equal(runs.filter((l) => l.startsWith("email m")).length, 5);
    assert.equal(runs.filter((l) => l.startsWith("resize p")).length, 5);
    assert.equal(runs.length, 10, runs.join("\n"));
    assert.equal((await store.get(stray!))?.status, "queued");
    assert.deepEqual(await store.list({ status: "dead" }), []);
    assert.equal((await a.stop()).code, 0);
    assert.equal((await b.stop()).code, 0);
  });
});

Deno.test("cli.ts pause, resume and queues store a queue's state, and submit --priority orders claims", async (t) => {
  await using dir = await tempDir();
  await eachDb(t, dir.path, async (db, store) => {
    const out = `${dir.path}/${crypto.randomUUID()}`;
    await Deno.mkdir(out);
    assert.equal(
      await ok(["pause", "emails", ...dbArgs(db)]),
      "paused emails\n",
    );
    // The SQLite database also lists the default queue, which eachDb's
    // first submit used.
    assert.deepEqual(
      JSON.parse(await ok(["queues", ...dbArgs(db), "--json"]))
        .map((q: { name: string; paused: boolean }) => [q.name, q.paused])
        .filter(([name]: [string]) => name !== "default"),
      [["emails", true]],
    );
    const ids: string[] = [];
    for (
      const [key, priority] of [["low", "-1"], ["high", "7"], ["mid", "0"]]
    ) {
      ids.push(
        ...await submit(db, [
          "--queue",
          "emails",
          "--priority",
          priority!,
          "--type",
          "ordered",
          "--payload",
          JSON.stringify({ dir: out, key }),
        ]),
      );
    }
    assert.equal((await store.get(ids[1]!))?.priority, 7);
    await using worker = startWorker(db, [
      "--queues",
      "emails,ticks",
      "--handlers",
      EMAILS,
      "--queue-concurrency",
      "emails=1",
      "--workers",
      "1",
      "--poll-interval-ms",
      "20",
    ]);
    // A task of the worker's other queue runs: the worker is claiming,
    // and the paused queue's tasks stay queued all the same.
    const [tick] = await submit(db, [
      "--queue",
      "ticks",
      "--type",
      "sendEmail",
      "--payload",
      JSON.stringify({ dir: out, key: "tick" }),
    ]);
    await waitFor(
      async () => (await store.get(tick!))?.status === "succeeded",
      { what: "the unpaused queue's task to run" },
    );
    for (const id of ids) {
      assert.equal((await store.get(id))?.status, "queued");
    }
    assert.equal(
      await ok(["resume", "emails", ...dbArgs(db)]),
      "resumed emails\n",
    );
    await waitFor(async () => {
      const done = await Promise.all(ids.map((id) => store.get(id)));
      return done.every((r) => r?.status === "succeeded");
    }, { what: "the resumed queue to run", timeoutMs: 30_000 });
    assert.deepEqual(await lines(`${out}/runs.log`), [
      "email tick",
      "order high",
      "order mid",
      "order low",
    ]);
    assert.equal((await worker.stop()).code, 0);
    const badLimit = await cli([
      "start",
      ...dbArgs(db),
      "--queues",
      "emails",
      "--queue-concurrency",
      "images=2",
    ]);
    assert.equal(badLimit.code, 2);
    assert.match(
      badLimit.stderr,
      /--queue-concurrency names "images", which is not one of --queues \(emails\)/,
    );
    const bad = await cli(["pause", "", ...dbArgs(db)]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /QUEUE must have 1 to 128 characters/);
    const badPriority = await cli([
      "submit",
      ...dbArgs(db),
      "--type",
      "noop",
      "--priority",
      "1.5",
    ]);
    assert.equal(badPriority.code, 2);
  });
});

Deno.test("cli.ts cancel and delete act on known ids, and an unknown id is an error that changes nothing", async (t) => {
  await using dir = await tempDir();
  await eachDb(t, dir.path, async (db, store) => {
    const [a, b] = await submit(db, [
      "--type",
      "noop",
      "--count",
      "2",
      "--delay",
      "1h",
    ]);
    const unknown = await cli(["cancel", a!, "no-such-id", ...dbArgs(db)]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown ids: no-such-id \(no such task\)/);
    assert.equal((await store.get(a!))?.status, "queued");
    const cancelled = JSON.parse(
      await ok(["cancel", a!, ...dbArgs(db), "--json"]),
    );
    assert.deepEqual(cancelled, [{
      id: a,
      outcome: "cancelled",
      was: "queued",
    }]);
    const record = await store.get(a!);
    assert.deepEqual([record?.status, record?.lastError], [
      "dead",
      "Cannot run task: cancelled",
    ]);
    assert.match(
      await ok(["cancel", a!, ...dbArgs(db)]),
      /already finished \(dead\)/,
    );
    const refused = await cli(["delete", b!, "nope", ...dbArgs(db)]);
    assert.equal(refused.code, 1);
    assert.ok(await store.get(b!));
    assert.equal(
      await ok(["delete", a!, b!, ...dbArgs(db)]),
      `${a}  deleted\n${b}  deleted\n`,
    );
    assert.equal(await store.get(a!), undefined);
    assert.equal(await store.get(b!), undefined);
    const usage = await cli(["cancel", ...dbArgs(db)]);
    assert.equal(usage.code, 2);
  });
});

Deno.test("cli.ts cancel, delete, pause, resume and queues need only read, write and FFI on the database's directory", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  const [id] = (await ok([
    "submit",
    "--db",
    path,
    "--type",
    "noop",
    "--delay",
    "1h",
  ])).trim().split("\n");
  const rw = [
    `--allow-read=${dir.path}`,
    `--allow-write=${dir.path}`,
    "--allow-ffi",
  ];
  for (
    const args of [
      ["pause", "emails"],
      ["resume", "emails"],
      ["cancel", id!],
      ["delete", id!],
    ]
  ) {
    await ok([...args, "--db", path], { permissions: rw });
  }
  await ok(["queues", "--db", path], {
    permissions: [`--allow-read=${dir.path}`, "--allow-ffi"],
  });
});
