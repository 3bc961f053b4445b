import assert from "node:assert/strict";
import type {
  Database,
  DriverName,
} from "../../../lib/store/sqlite/database.ts";
import {
  migrate,
  MIGRATIONS,
  QUERIES,
  readUserVersion,
  SCHEMA_VERSION,
} from "../../../lib/store/sqlite/schema.ts";
import { openDatabase } from "../../../lib/store/sqlite/open_database.ts";
import { SqliteError } from "../../../lib/store/sqlite/sqlite_error.ts";
import { SqliteTaskStore } from "../../../lib/store/sqlite/sqlite_store.ts";
import { openStore } from "../../../lib/store/open_store.ts";
import { tempDir } from "../../_helpers.ts";
import type { TaskRecord } from "../../../lib/store/store.ts";
import {
  batch,
  checkCountsByQueueMigrated,
  checkSeededCounts,
  storeConformance,
  T0,
  task,
} from "../conformance.ts";

const DRIVERS: DriverName[] = ["ffi", "builtin"];

// Conformance stores need a fresh file per case and cannot clean up after
// themselves through the TaskStore interface, so they share one directory
// removed when the module unloads.
const conformanceDir = Deno.makeTempDirSync({ prefix: "sluice-store-" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(conformanceDir, { recursive: true });
});
let fileCount = 0;

for (const driver of DRIVERS) {
  storeConformance(
    `sqlite-${driver}`,
    () =>
      SqliteTaskStore.open(`${conformanceDir}/${driver}-${fileCount++}.db`, {
        driver,
      }),
  );
}

for (const driver of DRIVERS) {
  Deno.test(`SqliteTaskStore.open() finds committed tasks again when the ${driver} store is reopened`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/tasks.db`;
    {
      await using store = SqliteTaskStore.open(path, { driver });
      assert.equal(store.kind, `sqlite-${driver}`);
      assert.equal(store.durable, true);
      const { claimed } = await store.commit(batch({
        inserts: [task("a", { idempotencyKey: "k" }), task("b")],
        claimDue: 1,
      }));
      await store.commit(batch({
        settles: [{
          id: "a",
          version: claimed[0]!.version,
          outcome: { kind: "succeeded", result: [1, "x"], outputKey: "o/a" },
        }, {
          id: "b",
          version: 7,
          outcome: { kind: "succeeded", result: null, outputKey: null },
        }],
      }));
    }
    await using store = SqliteTaskStore.open(path, { driver });
    const a = await store.getByKey("k");
    assert.equal(a?.status, "succeeded");
    assert.deepEqual(a?.result, [1, "x"]);
    assert.equal((await store.get("b"))?.status, "queued");
    assert.equal(await store.staleSettles(), 1);
  });
}

Deno.test("SqliteTaskStore.open() is in-memory and not durable when the path is :memory:", async () => {
  await using store = SqliteTaskStore.open(":memory:");
  assert.equal(store.durable, false);
  await store.commit(batch({ inserts: [task("a")] }));
  assert.equal((await store.list()).length, 1);
});

/**
 * Opens `path` as a database at schema `version`: the first `version`
 * migrations applied, as a Sluice of that version left it. Close it
 * before opening a store on the file.
 */
function databaseAt(path: string, version: number): Database {
  const db = openDatabase(path);
  for (const step of MIGRATIONS.slice(0, version)) db.exec(step.sql);
  db.exec(`PRAGMA user_version = ${version}`);
  return db;
}

Deno.test("migrate() sets user_version and does nothing when run again", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  await SqliteTaskStore.open(path).close();
  await SqliteTaskStore.open(path).close();
  using db = openDatabase(path);
  assert.equal(readUserVersion(db), SCHEMA_VERSION);
  assert.equal(migrate(db, path), 0);
  assert.equal(readUserVersion(db), SCHEMA_VERSION);
  const names = db.prepare(
    "SELECT name FROM sqlite_master WHERE tbl_name = 'tasks' AND type = 'index' ORDER BY name",
  ).all().map((row) => row["name"]);
  assert.deepEqual(
    names.filter((name) => !String(name).startsWith("sqlite_autoindex")),
    [
      "tasks_claim",
      "tasks_dead",
      "tasks_dead_updated",
      "tasks_due",
      "tasks_failed_due",
      "tasks_lease",
      "tasks_succeeded",
    ],
  );
  const journal = db.prepare("PRAGMA journal_mode").get()?.["journal_mode"];
  assert.equal(journal, "wal");
});

Deno.test("migrate() upgrades a version 1 database and keeps its tasks", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = databaseAt(path, 1);
    db.exec(
      "INSERT INTO tasks (id, type, idempotency_key, payload, status, attempts, " +
        "max_attempts, run_at, created_at, updated_at, version, last_error, error_class) " +
        "VALUES ('old', 'noop', 'k', 'null', 'dead', 3, 3, 1, 1, 1, 0, 'boom', 'transient')",
    );
  }
  await using store = SqliteTaskStore.open(path);
  assert.deepEqual((await store.list({ status: "dead" })).map((r) => r.id), [
    "old",
  ]);
  assert.equal((await store.getByKey("k"))?.lastError, "boom");
  using db = openDatabase(path);
  assert.equal(readUserVersion(db), SCHEMA_VERSION);
  const indexes = db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_%'",
  ).all().map((row) => row["name"]);
  assert.ok(indexes.includes("tasks_dead"));
  assert.ok(!indexes.includes("tasks_status_created"));
});

Deno.test("migrate() upgrades a version 2 database and keeps its tasks, with no start recorded", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = databaseAt(path, 2);
    const insert = db.prepare(
      "INSERT INTO tasks (id, type, idempotency_key, payload, status, attempts, " +
        "max_attempts, run_at, lease_until, created_at, updated_at, result, version) " +
        "VALUES (?, 'noop', ?, '{\"n\":1}', ?, ?, 3, ?, ?, 1, 1, ?, ?)",
    );
    insert.run("done", "k-done", "succeeded", 1, 1, null, "[7]", 2);
    insert.run("held", "k-held", "running", 1, T0, T0 + 100, null, 3);
    insert.run("waiting", null, "queued", 0, T0, null, null, 0);
  }
  {
    using db = openDatabase(path);
    assert.equal(
      migrate(db, path),
      SCHEMA_VERSION - 2,
      "only steps 3 and later are applied",
    );
    assert.equal(readUserVersion(db), SCHEMA_VERSION);
  }
  await using store = SqliteTaskStore.open(path);
  const done = await store.getByKey("k-done");
  assert.deepEqual(
    [done?.status, done?.result, done?.attempts, done?.startedAt],
    ["succeeded", [7], 1, null],
  );
  assert.deepEqual((await store.get("waiting"))?.payload, { n: 1 });
  const held = await store.get("held");
  assert.deepEqual(
    [held?.status, held?.leaseUntil, held?.startedAt],
    ["running", T0 + 100, null],
  );
  assert.equal((await store.status(T0)).started, 0);
  // A row written before the column existed takes a start like any other.
  const { started } = await store.commit(batch({
    now: T0 + 5,
    starts: [{ id: "held", version: 3 }],
  }));
  assert.deepEqual(started, [true]);
  assert.equal((await store.get("held"))?.startedAt, T0 + 5);
  assert.equal((await store.status(T0 + 5)).started, 1);
});

Deno.test("SqliteTaskStore counts a settle and a release by queue whether or not this store made the claim", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  await using a = SqliteTaskStore.open(path);
  await using b = SqliteTaskStore.open(path);
  const { inserted } = await a.commit(batch({
    inserts: ["x", "y", "z", "w"].map((id) =>
      task(id, { queue: id === "w" ? "default" : "mail", claim: true })
    ),
  }));
  const [x, y, z, w] = inserted.map((o) => o.record);
  const ok = (r: TaskRecord) => ({
    id: r.id,
    version: r.version,
    outcome: { kind: "succeeded" as const, result: null, outputKey: null },
  });
  // b made none of these claims; a made them all.
  await b.commit(batch({
    now: T0 + 1,
    settles: [ok(x!)],
    releases: [{ id: y!.id, version: y!.version }],
  }));
  await a.commit(batch({ now: T0 + 2, settles: [ok(z!), ok(x!)] }));
  await a.commit(batch({ now: T0 + 3, settles: [ok(w!)] }));
  const none = { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
  assert.deepEqual(
    (await a.status(T0 + 3)).queues.map((q) => [q.queue, q.counts]),
    [
      ["default", { ...none, succeeded: 1 }],
      ["mail", { ...none, queued: 1, succeeded: 2 }],
    ],
  );
  assert.equal(await a.staleSettles(), 1, "x was settled twice");
});

Deno.test("migrate() upgrades a version 8 database to counts by queue, keeping the totals and recounting the rows of each queue", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = databaseAt(path, 8);
    const insert = db.prepare(
      "INSERT INTO tasks (id, type, payload, status, attempts, max_attempts, " +
        "run_at, created_at, updated_at, version, queue) " +
        "VALUES (?, 'noop', 'null', ?, 1, 3, 0, 1, ?, 1, ?)",
    );
    insert.run("a1", "succeeded", T0 + 1, "a");
    insert.run("a2", "succeeded", T0 + 2, "a");
    insert.run("a3", "queued", T0, "a");
    insert.run("d1", "succeeded", T0 + 3, "default");
    insert.run("d2", "dead", T0 + 4, "default");
    // The history: more finished and submitted than the rows left.
    db.exec(
      "UPDATE status_counts SET entered = CASE status " +
        "WHEN 'succeeded' THEN 10 WHEN 'dead' THEN 3 " +
        "WHEN 'submitted' THEN 20 ELSE entered END",
    );
  }
  await using store = SqliteTaskStore.open(path);
  await checkCountsByQueueMigrated(store);
});

Deno.test("migrate() upgrades a version 3 database, keeping its tasks and seeding counts and totals from them", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = databaseAt(path, 3);
    const insert = db.prepare(
      "INSERT INTO tasks (id, type, idempotency_key, payload, status, attempts, " +
        "max_attempts, run_at, lease_until, created_at, updated_at, result, version) " +
        "VALUES (?, 'noop', ?, 'null', ?, 1, 3, ?, ?, 1, ?, ?, 2)",
    );
    insert.run("s1", "k-s1", "succeeded", 1, null, T0 + 1, "1");
    insert.run("s2", null, "succeeded", 1, null, T0 + 2, "2");
    insert.run("s3", null, "succeeded", 1, null, T0 + 3, "3");
    insert.run("d1", "k-d1", "dead", 1, null, T0 + 1, null);
    insert.run("r1", null, "running", T0, T0 + 100, T0, null);
    insert.run("q1", null, "queued", T0, null, T0, null);
  }
  {
    using db = openDatabase(path);
    assert.equal(
      migrate(db, path),
      SCHEMA_VERSION - 3,
      "only steps 4 and later are applied",
    );
    assert.equal(readUserVersion(db), SCHEMA_VERSION);
  }
  await using store = SqliteTaskStore.open(path);
  const old = await store.getByKey("k-s1");
  assert.deepEqual([old?.result, old?.dedupeUntil], [1, null]);
  // Existing rows prune through the new dead index and the old one.
  await checkSeededCounts(store, {
    queued: 1,
    running: 1,
    succeeded: 3,
    failed: 0,
    dead: 1,
  });
  // A key held by a row from before the migration (no window) still
  // deduplicates; the pruned one's key is free.
  const { inserted } = await store.commit(batch({
    now: T0 + 11,
    inserts: [
      task("new-d1", { idempotencyKey: "k-d1" }),
      task("x", { idempotencyKey: "k-s1" }),
    ],
  }));
  assert.deepEqual(inserted.map((o) => o.inserted), [true, true]);
});

Deno.test("migrate() upgrades a version 4 database, dropping the counting triggers, recomputing counts that were off and keeping the totals", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = databaseAt(path, 4);
    // The triggers count these rows; the totals then carry history the
    // rows no longer show (pruned tasks), and a count is off (as after
    // SQL that bypassed them), which the migration must not keep.
    db.exec(
      "INSERT INTO tasks (id, type, payload, status, attempts, max_attempts, " +
        "run_at, created_at, updated_at, version) VALUES " +
        "('s1', 't', 'null', 'succeeded', 1, 3, 0, 0, 0, 1), " +
        "('d1', 't', 'null', 'dead', 1, 3, 0, 0, 0, 1), " +
        "('q1', 't', 'null', 'queued', 0, 3, 0, 0, 0, 0), " +
        "('q2', 't', 'null', 'queued', 0, 3, 0, 0, 0, 0);" +
        "UPDATE status_counts SET entered = entered + 40 " +
        "WHERE status = 'succeeded';" +
        "UPDATE status_counts SET n = n + 7 WHERE status = 'running';",
    );
  }
  {
    using db = openDatabase(path);
    assert.equal(
      migrate(db, path),
      SCHEMA_VERSION - 4,
      "only steps 5 and later are applied",
    );
    const triggers = db.prepare(
      "SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger'",
    ).get();
    assert.equal(triggers?.["n"], 0);
  }
  await using store = SqliteTaskStore.open(path);
  const status = await store.status(T0);
  assert.deepEqual(status.counts, {
    queued: 2,
    running: 0,
    succeeded: 1,
    failed: 0,
    dead: 1,
  });
  assert.deepEqual(status.totals, { submitted: 4, succeeded: 41, dead: 1 });
  await store.commit(batch({ inserts: [task("a")], claimDue: 1 }));
  const after = await store.status(T0);
  assert.deepEqual(after.counts, {
    queued: 2,
    running: 1,
    succeeded: 1,
    failed: 0,
    dead: 1,
  });
  assert.equal(after.totals.submitted, 5);
});

Deno.test("SqliteTaskStore.status() shows counts off after another connection's SQL changes statuses, until recount() recomputes them", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  await using store = SqliteTaskStore.open(path);
  await store.commit(batch({ inserts: [task("a"), task("b"), task("c")] }));
  const kept = await store.status(T0);
  using raw = openDatabase(path);
  raw.exec("PRAGMA busy_timeout = 5000");
  // Another writer's SQL: an insert, a change of status and a delete.
  raw.exec(
    "INSERT INTO tasks (id, type, payload, status, attempts, max_attempts, " +
      "run_at, created_at, updated_at, version) " +
      "VALUES ('x', 't', 'null', 'dead', 1, 1, 0, 0, 0, 0)",
  );
  raw.exec("UPDATE tasks SET status = 'succeeded' WHERE id IN ('a', 'b')");
  raw.exec("DELETE FROM tasks WHERE id = 'c'");
  const off = await store.status(T0);
  assert.deepEqual(
    [off.counts, off.totals],
    [kept.counts, kept.totals],
    "no Sluice statement ran",
  );
  await store.recount();
  const status = await store.status(T0);
  assert.deepEqual(status.counts, {
    queued: 0,
    running: 0,
    succeeded: 2,
    failed: 0,
    dead: 1,
  });
  assert.deepEqual(status.totals, kept.totals, "the totals are history");
  const [counted] = raw.prepare(
    "SELECT (SELECT count(*) FROM tasks) AS tasks, " +
      "(SELECT sum(n) FROM status_counts) AS counted",
  ).all();
  assert.equal(counted?.["tasks"], counted?.["counted"]);
  await using reader = SqliteTaskStore.open(path, { readonly: true });
  await assert.rejects(reader.recount(), {
    message: "Cannot recount tasks: task store is read-only",
  });
});

Deno.test("SqliteTaskStore.prunable() counts on a read-only store while prune() refuses to write", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    await using writer = SqliteTaskStore.open(path);
    const { inserted } = await writer.commit(
      batch({ inserts: [task("a", { claim: true })] }),
    );
    const { id, version } = inserted[0]!.record;
    await writer.commit(batch({
      now: T0 + 1,
      settles: [{
        id,
        version,
        outcome: { kind: "succeeded", result: null, outputKey: null },
      }],
    }));
  }
  await using reader = SqliteTaskStore.open(path, { readonly: true });
  const policy = { succeeded: { maxAgeMs: 0 } };
  assert.deepEqual(await reader.prunable(policy, T0 + 2), {
    succeeded: 1,
    dead: 0,
    skipped: false,
  });
  await assert.rejects(reader.prune(policy, T0 + 2, 10), {
    message: "Cannot prune tasks: task store is read-only",
  });
  assert.equal((await reader.get("a"))?.status, "succeeded");
});

Deno.test("migrate() creates the schema when the database is empty", () => {
  using db = openDatabase(":memory:");
  assert.equal(readUserVersion(db), 0);
  assert.equal(migrate(db, ":memory:"), SCHEMA_VERSION);
  assert.equal(readUserVersion(db), SCHEMA_VERSION);
  assert.equal(migrate(db, ":memory:"), 0);
});

Deno.test("SqliteTaskStore.open() refuses the file when its schema is newer than known", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = openDatabase(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  }
  assert.throws(
    () => SqliteTaskStore.open(path),
    new RegExp(`schema version ${SCHEMA_VERSION + 1} is newer`),
  );
  assert.throws(
    () => SqliteTaskStore.open(path, { readonly: true }),
    /is newer/,
  );
  using db = openDatabase(path);
  assert.equal(readUserVersion(db), SCHEMA_VERSION + 1);
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master").get();
  assert.equal(tables?.["n"], 0);
});

Deno.test("SqliteTaskStore queries use an index when planned by SQLite", () => {
  using db = openDatabase(":memory:");
  migrate(db, ":memory:");
  const queries: [string, string][] = [
    ["claimCandidates", QUERIES.claimCandidates],
    ["claimCandidatesOfTypes", QUERIES.claimCandidatesOfTypes],
    ["claimRows", QUERIES.claimRows],
    ["cancel", QUERIES.cancel],
    ["removeId", QUERIES.removeId],
    ["statusOf", QUERIES.statusOf],
    ["addCounts", QUERIES.addCounts],
    ["dueFailed", QUERIES.dueFailed],
    ["start", QUERIES.start],
    ["release", QUERIES.release],
    ["renew", QUERIES.renew],
    ["settleRetry", QUERIES.settleRetry],
    ["settleDead", QUERIES.settleDead],
    ["byKey", QUERIES.byKey],
    ["byId", QUERIES.byId],
    ["expireToDead", QUERIES.expireToDead],
    ["expireToQueued", QUERIES.expireToQueued],
    ["releaseKey", QUERIES.releaseKey],
    ["oldestSucceeded", QUERIES.oldestSucceeded],
    ["oldestSucceededBefore", QUERIES.oldestSucceededBefore],
    ["oldestDead", QUERIES.oldestDead],
    ["oldestDeadBefore", QUERIES.oldestDeadBefore],
    ["countSucceededBefore", QUERIES.countSucceededBefore],
    ["countDeadBefore", QUERIES.countDeadBefore],
    ["deleteRows", QUERIES.deleteRows],
    ["statusCounts", QUERIES.statusCounts],
    ["countsOf", QUERIES.countsOf],
    ["startedRunning", QUERIES.startedRunning],
    ["oldestDue", QUERIES.oldestDue],
    ["listDead", QUERIES.listDead],
    ["requeueAll", QUERIES.requeueAll],
    ["deadByQueue", QUERIES.deadByQueue],
    ["settleSucceeded", QUERIES.settleSucceeded],
  ];
  const expected: Record<string, RegExp> = {
    // Each queue's candidates come in the index's order: no sort.
    claimCandidates:
      /USING INDEX tasks_claim \(queue=\? AND priority<\?\)|USING INDEX tasks_claim \(queue=\?\)/,
    claimCandidatesOfTypes: /USING INDEX tasks_claim \(queue=\?/,
    claimRows: /USING INTEGER PRIMARY KEY \(rowid=\?\)/,
    cancel: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    removeId: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    statusOf: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    dueFailed: /USING COVERING INDEX tasks_failed_due/,
    byKey: /USING INDEX sqlite_autoindex_tasks_2/,
    start: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    release: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    settleSucceeded: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    expireToQueued: /USING INDEX tasks_lease/,
    expireToDead: /USING INDEX tasks_lease/,
    oldestDue: /USING (COVERING )?INDEX tasks_due/,
    listDead: /USING INDEX tasks_dead/,
    releaseKey: /USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    // Prune reads each finished status in its index's order, one queue at
    // a time: no sort.
    oldestSucceeded: /USING (COVERING )?INDEX tasks_succeeded \(queue=\?\)/,
    oldestSucceededBefore:
      /USING (COVERING )?INDEX tasks_succeeded \(queue=\? AND updated_at<\?\)/,
    oldestDead: /USING (COVERING )?INDEX tasks_dead_updated \(queue=\?\)/,
    oldestDeadBefore:
      /USING (COVERING )?INDEX tasks_dead_updated \(queue=\? AND updated_at<\?\)/,
    countSucceededBefore:
      /USING (COVERING )?INDEX tasks_succeeded \(queue=\? AND updated_at<\?\)/,
    countDeadBefore:
      /USING (COVERING )?INDEX tasks_dead_updated \(queue=\? AND updated_at<\?\)/,
    deadByQueue: /USING (COVERING )?INDEX tasks_dead_updated/,
    deleteRows: /USING INTEGER PRIMARY KEY \(rowid=\?\)/,
    // Running rows only, through the partial lease index.
    startedRunning: /USING INDEX tasks_lease/,
  };
  for (const [name, sql] of queries) {
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((row) =>
      String(row["detail"])
    );
    assert.ok(plan.length > 0, name);
    for (const detail of plan) {
      assert.doesNotMatch(
        detail,
        /^SCAN tasks\b(?! USING)/,
        `${name}: ${detail}`,
      );
      assert.doesNotMatch(detail, /TEMP B-TREE/, `${name}: ${detail}`);
    }
    const pattern = expected[name];
    if (pattern !== undefined) {
      assert.ok(
        plan.some((detail) => pattern.test(detail)),
        `${name}: ${plan}`,
      );
    }
  }
});

Deno.test("SqliteTaskStore.open() throws SqliteError when the directory is missing", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/missing/tasks.db`;
  assert.throws(
    () => SqliteTaskStore.open(path),
    (error: unknown) =>
      error instanceof SqliteError && error.primaryCode === 14 &&
      /Cannot/.test(error.message),
  );
  await assert.rejects(Deno.stat(`${dir.path}/missing`), Deno.errors.NotFound);
});

Deno.test({
  name:
    "SqliteTaskStore.open() throws SqliteError when the directory is not writable",
  ignore: Deno.uid() === 0,
  async fn(): Promise<void> {
    await using dir = await tempDir();
    await Deno.chmod(dir.path, 0o500);
    try {
      assert.throws(
        () => SqliteTaskStore.open(`${dir.path}/tasks.db`),
        SqliteError,
      );
    } finally {
      await Deno.chmod(dir.path, 0o700);
    }
  },
});

for (const driver of DRIVERS) {
  Deno.test(`SqliteTaskStore.open() throws SqliteError and leaves the file alone when the ${driver} driver finds no database`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/tasks.db`;
    const garbage = new TextEncoder().encode(
      "this is not a SQLite database\n".repeat(300),
    );
    await Deno.writeFile(path, garbage);
    assert.throws(
      () => SqliteTaskStore.open(path, { driver }),
      (error: unknown) => error instanceof SqliteError && error.code === 26,
    );
    assert.deepEqual(await Deno.readFile(path), garbage);
  });
}

Deno.test("SqliteTaskStore.open() validates options when they are out of range or mistyped", () => {
  assert.throws(
    () => SqliteTaskStore.open(":memory:", { synchronous: "BOGUS" as "FULL" }),
    (error: unknown) =>
      error instanceof RangeError && /synchronous/.test(error.message) &&
      /"BOGUS"/.test(error.message),
  );
  assert.throws(
    () => SqliteTaskStore.open(":memory:", { busyTimeoutMs: -1 }),
    /busyTimeoutMs .* got -1/,
  );
  assert.throws(
    () => SqliteTaskStore.open(":memory:", { busyTimeoutMs: 1.5 }),
    RangeError,
  );
  assert.throws(
    () => SqliteTaskStore.open(":memory:", { driver: "odbc" as "ffi" }),
    /driver .* got "odbc"/,
  );
  assert.throws(
    () =>
      SqliteTaskStore.open(":memory:", {
        readonly: "yes" as unknown as boolean,
      }),
    TypeError,
  );
  assert.throws(() => SqliteTaskStore.open(""), TypeError);
});

Deno.test("SqliteTaskStore.open() accepts every synchronous mode when it is valid", async () => {
  await using dir = await tempDir();
  for (const synchronous of ["FULL", "NORMAL", "OFF"] as const) {
    await using store = SqliteTaskStore.open(`${dir.path}/${synchronous}.db`, {
      synchronous,
      busyTimeoutMs: 0,
    });
    const { inserted } = await store.commit(batch({ inserts: [task("a")] }));
    assert.equal(inserted[0]?.inserted, true);
  }
});

Deno.test("SqliteTaskStore.commit() rejects with TypeError and applies nothing when a payload is not plain JSON", async () => {
  await using store = SqliteTaskStore.open(":memory:");
  const cycle: Record<string, unknown> = {};
  cycle["self"] = cycle;
  const cases: [unknown, string][] = [
    [{ n: 1n }, "BigInt at payload.n"],
    [cycle, "cycle at payload.self"],
    [undefined, "undefined at payload"],
    [() => 1, "function at payload"],
    [{ list: [1, NaN] }, "NaN at payload.list[1]"],
    [{ at: new Date(0) }, "Date at payload.at"],
  ];
  for (const [payload, where] of cases) {
    await assert.rejects(
      store.commit(batch({ inserts: [task("ok"), task("bad", { payload })] })),
      {
        name: "TypeError",
        message:
          `Cannot store task bad: payload is not plain JSON data (${where})`,
      },
    );
  }
  assert.equal(await store.get("ok"), undefined);
  const { inserted } = await store.commit(batch({ inserts: [task("ok")] }));
  assert.equal(inserted[0]?.inserted, true);
  assert.throws(() => SqliteTaskStore.serializePayload(Symbol("s")), TypeError);
  assert.equal(SqliteTaskStore.serializePayload(null), "null");
});

Deno.test("SqliteTaskStore.commit() stores an undefined result as null and refuses a BigInt result", async () => {
  await using store = SqliteTaskStore.open(":memory:");
  const { claimed } = await store.commit(batch({
    inserts: [task("a"), task("b")],
    claimDue: 2,
  }));
  const [a, b] = claimed;
  await assert.rejects(
    store.commit(batch({
      settles: [{
        id: b!.id,
        version: b!.version,
        outcome: { kind: "succeeded", result: 1n, outputKey: null },
      }],
    })),
    /Cannot settle task b: result is not plain JSON data \(BigInt at result\)/,
  );
  assert.equal((await store.get("b"))?.status, "running");
  const { settled } = await store.commit(batch({
    settles: [{
      id: a!.id,
      version: a!.version,
      outcome: { kind: "succeeded", result: undefined, outputKey: null },
    }],
  }));
  assert.deepEqual(settled, [true]);
  assert.equal((await store.get("a"))?.result, null);
});

Deno.test("SqliteTaskStore.status() reads from a readonly connection when a writer is mid-transaction", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  await using writer = SqliteTaskStore.open(path, { busyTimeoutMs: 0 });
  await writer.commit(batch({ inserts: [task("a"), task("b")] }));
  using raw = openDatabase(path);
  raw.exec("PRAGMA busy_timeout = 0");
  raw.exec("BEGIN IMMEDIATE");
  try {
    raw.prepare(
      "UPDATE tasks SET status = 'dead', version = version + 1 WHERE id = ?",
    ).run("a");
    await using reader = SqliteTaskStore.open(path, {
      readonly: true,
      busyTimeoutMs: 0,
    });
    assert.equal(reader.readonly, true);
    const status = await reader.status(T0 + 10);
    assert.equal(status.counts.queued, 2);
    assert.equal(status.counts.dead, 0);
    assert.equal(status.oldestQueuedAgeMs, 10);
    assert.equal((await reader.get("a"))?.status, "queued");
    await assert.rejects(reader.commit(batch({})), /read-only/);
    await assert.rejects(reader.recoverExpired(T0), /read-only/);
    await assert.rejects(reader.requeue("all", T0), /read-only/);
    await assert.rejects(
      writer.commit(batch({ inserts: [task("c")] })),
      (error: unknown) =>
        error instanceof SqliteError && error.primaryCode === 5,
    );
  } finally {
    raw.exec("ROLLBACK");
  }
  const { inserted } = await writer.commit(batch({ inserts: [task("c")] }));
  assert.equal(inserted[0]?.inserted, true);
});

Deno.test("SqliteTaskStore.open() refuses a readonly store when the file has no schema", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  {
    using db = openDatabase(path);
    db.exec("CREATE TABLE other (x)");
  }
  assert.throws(
    () => SqliteTaskStore.open(path, { readonly: true }),
    /read-only: the file holds no Sluice queue \(schema version 0\)/,
  );
  using db = openDatabase(path, { readonly: true });
  assert.equal(readUserVersion(db), 0, "nothing was migrated");
});

Deno.test("SqliteTaskStore.open() refuses a readonly store when the schema is older than known", async () => {
  await using dir = await tempDir();
  for (const step of MIGRATIONS.slice(0, -1)) {
    const path = `${dir.path}/tasks-${step.version}.db`;
    databaseAt(path, step.version).close();
    assert.throws(
      () => SqliteTaskStore.open(path, { readonly: true }),
      {
        message:
          `Cannot open task store ${path} read-only: schema version ${step.version} is older than ${SCHEMA_VERSION} and cannot be migrated read-only`,
      },
    );
    using db = openDatabase(path, { readonly: true });
    assert.equal(readUserVersion(db), step.version, "nothing was migrated");
  }
});

for (const driver of DRIVERS) {
  Deno.test(`SqliteTaskStore.open() says there is no Sluice queue and creates nothing when the ${driver} store opens a missing file read-only`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/tasks.db`;
    assert.throws(
      () => SqliteTaskStore.open(path, { driver, readonly: true }),
      (error: unknown) =>
        error instanceof Error && !(error instanceof SqliteError) &&
        error.message ===
          `Cannot open task store ${path} read-only: there is no Sluice queue there (the file does not exist)` &&
        error.cause instanceof SqliteError && error.cause.primaryCode === 14,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
    // The same through openStore.
    await assert.rejects(
      openStore(path, { readonly: true, sqlite: { driver } }),
      /there is no Sluice queue there/,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
  });
}

Deno.test("openStore() opens SQLite read-only when readonly is set", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  const writer = await openStore(path);
  try {
    await writer.commit(batch({ inserts: [task("a")] }));
  } finally {
    await writer.close();
  }
  const reader = await openStore(path, {
    readonly: true,
    sqlite: { readonly: false },
  });
  try {
    assert.ok(reader instanceof SqliteTaskStore && reader.readonly);
    assert.equal((await reader.get("a"))?.status, "queued");
    await assert.rejects(
      reader.commit(batch({ inserts: [task("b")] })),
      /Cannot commit: task store is read-only/,
    );
  } finally {
    await reader.close();
  }
  await assert.rejects(
    openStore(path, { readonly: "yes" as unknown as boolean }),
    TypeError,
  );
});

/**
 * A child process that opens the store at `path` once the parent says go
 * (a byte on stdin), so that all children open the fresh file at the same
 * moment, commits one insert, and exits 0.
 */
const OPENER = `
import { SqliteTaskStore } from ${
  JSON.stringify(
    new URL("../../../lib/store/sqlite/sqlite_store.ts", import.meta.url).href,
  )
};
const [path, driver, id] = Deno.args;
const go = Deno.stdin.readable.getReader();
await Deno.stdout.write(new TextEncoder().encode("ready\\n"));
await go.read();
const store = SqliteTaskStore.open(path, { driver });
const { inserted } = await store.commit({
  settles: [],
  inserts: [{ id, type: "t", idempotencyKey: id, payload: null, maxAttempts: 1, runAt: 0 }],
  claimDue: 0,
  leaseMs: 0,
  now: 0,
});
await store.close();
if (!inserted[0]?.inserted) throw new Error("Cannot insert: " + id);
`;

for (const driver of DRIVERS) {
  Deno.test(`SqliteTaskStore.open() succeeds in every process when six processes open one fresh file at once with the ${driver} driver`, async () => {
    await using dir = await tempDir();
    const script = `${dir.path}/opener.ts`;
    await Deno.writeTextFile(script, OPENER);
    const permissions = [
      `--allow-read=${dir.path}`,
      `--allow-write=${dir.path}`,
      ...(driver === "ffi" ? ["--allow-ffi"] : []),
    ];
    for (let round = 0; round < 3; round++) {
      const path = `${dir.path}/round-${round}.db`;
      const children = Array.from(
        { length: 6 },
        (_, i) =>
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--quiet",
              "--no-config",
              ...permissions,
              script,
              path,
              driver,
              `p${i}`,
            ],
            stdin: "piped",
            stdout: "piped",
            stderr: "piped",
          }).spawn(),
      );
      // Wait for every child to be ready, then release them together.
      await Promise.all(children.map(async (child) => {
        const reader = child.stdout.getReader();
        await reader.read();
        reader.releaseLock();
      }));
      await Promise.all(children.map(async (child) => {
        const writer = child.stdin.getWriter();
        await writer.write(new Uint8Array([1]));
        await writer.close();
      }));
      const results = await Promise.all(
        children.map((child) => child.output()),
      );
      results.forEach((output, i) => {
        assert.equal(
          output.code,
          0,
          `round ${round}, process ${i}: ${
            new TextDecoder().decode(output.stderr)
          }`,
        );
      });
      await using store = SqliteTaskStore.open(path, { driver });
      const tasks = await store.list();
      assert.deepEqual(
        tasks.map((record) => record.id).sort(),
        ["p0", "p1", "p2", "p3", "p4", "p5"],
      );
      using db = openDatabase(path);
      assert.equal(readUserVersion(db), SCHEMA_VERSION);
      assert.equal(
        db.prepare("PRAGMA journal_mode").get()?.["journal_mode"],
        "wal",
      );
    }
  });
}

Deno.test("SqliteTaskStore.commit() hands each task to one store when two connections claim at once", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/tasks.db`;
  await using one = SqliteTaskStore.open(path);
  await using two = SqliteTaskStore.open(path);
  await one.commit(batch({
    inserts: Array.from({ length: 50 }, (_, i) => task(`t${i}`)),
  }));
  const results = await Promise.all(
    Array.from(
      { length: 6 },
      (_, i) => (i % 2 === 0 ? one : two).commit(batch({ claimDue: 10 })),
    ),
  );
  const claimed = results.flatMap((result) => result.claimed.map((r) => r.id));
  assert.equal(claimed.length, 50);
  assert.equal(new Set(claimed).size, 50);
});
