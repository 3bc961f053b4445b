/**
 * Question: is the FFI driver at least as fast as `node:sqlite` on the
 * statements the task store runs per task? And what do the triggers that
 * keep the status counts (schema version 4) cost the store's group commit,
 * with `synchronous` NORMAL (the default) and FULL (every commit synced)?
 *
 * Run: deno bench --allow-read --allow-write --allow-env --allow-ffi bench/sqlite_bench.ts
 */
import type { Database, DriverName } from "../lib/store/sqlite/database.ts";
import { migrate } from "../lib/store/sqlite/schema.ts";
import { openDatabase } from "../lib/store/sqlite/open_database.ts";
import { SqliteTaskStore } from "../lib/store/sqlite/sqlite_store.ts";
import { uuidv7 } from "../lib/_id.ts";

const DRIVERS: readonly DriverName[] = ["builtin", "ffi"];
const SEEDED = 10_000;
const BATCH = 1_000;

const dir = Deno.makeTempDirSync({ prefix: "sluice-bench-" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(dir, { recursive: true });
});

function setup(driver: DriverName): Database {
  const db = openDatabase(`${dir}/${driver}.db`, { driver });
  db.exec(`
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE tasks (
      id TEXT PRIMARY KEY,
      type TEXT NOT NULL,
      idempotency_key TEXT UNIQUE,
      payload TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      run_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
  `);
  const insert = db.prepare(
    "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const now = Date.now();
  db.exec("BEGIN IMMEDIATE");
  for (let i = 0; i < SEEDED; i++) {
    insert.run(
      `seed-${i}`,
      "resize",
      `img-${i}:thumb`,
      `{"image":"img-${i}","variant":"thumb"}`,
      "queued",
      0,
      now,
      now,
    );
  }
  db.exec("COMMIT");
  return db;
}

const databases = new Map(DRIVERS.map((driver) => [driver, setup(driver)]));
globalThis.addEventListener("unload", () => {
  for (const db of databases.values()) db.close();
});

for (const [driver, db] of databases) {
  const baseline = driver === "builtin";
  const insert = db.prepare(
    "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const cleanup = db.prepare("DELETE FROM tasks WHERE id LIKE 'new-%'");
  let round = 0;
  Deno.bench({
    name: `${driver}: insert ${BATCH} task rows in one transaction`,
    group: "hot statements: insert",
    baseline,
    fn(b): void {
      const now = Date.now();
      const tag = round++;
      b.start();
      db.exec("BEGIN IMMEDIATE");
      for (let i = 0; i < BATCH; i++) {
        insert.run(
          `new-${tag}-${i}`,
          "resize",
          `new-${tag}-${i}:thumb`,
          `{"image":"img-${i}","variant":"thumb"}`,
          "queued",
          0,
          now,
          now,
        );
      }
      db.exec("COMMIT");
      b.end();
      cleanup.run();
    },
  });

  const update = db.prepare(
    "UPDATE tasks SET status = ?, attempts = attempts + 1, run_at = ? WHERE id = ?",
  );
  let updates = 0;
  Deno.bench({
    name: `${driver}: UPDATE by primary key`,
    group: "hot statements: update",
    baseline,
    fn(): void {
      const i = updates++ % SEEDED;
      update.run(i % 2 === 0 ? "running" : "queued", Date.now(), `seed-${i}`);
    },
  });

  const select = db.prepare(
    "SELECT * FROM tasks WHERE idempotency_key = ?",
  );
  let selects = 0;
  Deno.bench({
    name: `${driver}: SELECT by unique key`,
    group: "hot statements: select",
    baseline,
    fn(): void {
      const row = select.get(`img-${selects++ % SEEDED}:thumb`);
      if (row === undefined) throw new Error("Cannot select: row is missing");
    },
  });
}

// The store's own hot path: one group commit of 100 claimed inserts and the
// settles of the previous 100, as the queue issues them under load. The
// settles charge their attempts (`charge`), as they do for handlers that
// finish before their start is written.
const COMMIT_TASKS = 100;

/**
 * One group commit as the queue issues it under load: `COMMIT_TASKS`
 * claimed inserts, and the settles of the previous commit's inserts.
 */
function groupCommit(store: SqliteTaskStore): () => Promise<void> {
  let previous: { id: string; version: number }[] = [];
  return async () => {
    const now = Date.now();
    const inserts = Array.from({ length: COMMIT_TASKS }, () => ({
      id: uuidv7(), // the queue's time-ordered ids
      type: "noop",
      idempotencyKey: null,
      payload: { image_key: "img/000001.jpg", size: "200x200" },
      maxAttempts: 3,
      runAt: now,
      claim: true,
    }));
    const { inserted } = await store.commit({
      settles: previous.map(({ id, version }) => ({
        id,
        version,
        outcome: { kind: "succeeded", result: null, outputKey: null },
        charge: true,
      })),
      inserts,
      claimDue: 0,
      leaseMs: 30_000,
      now,
    });
    previous = inserted.map(({ record }) => ({
      id: record.id,
      version: record.version,
    }));
  };
}

for (const driver of DRIVERS) {
  const store = SqliteTaskStore.open(`${dir}/store-${driver}.db`, { driver });
  Deno.bench({
    name: `${driver}: commit ${COMMIT_TASKS} inserts + ${COMMIT_TASKS} settles`,
    group: "store commit",
    baseline: driver === "builtin",
    fn: groupCommit(store),
  });
  globalThis.addEventListener("unload", () => void store.close());
}

/**
 * A store on a fresh file at the current schema, without the counting
 * triggers when `counted` is false: the same commit path as before they
 * existed (status_counts then stays as seeded; nothing here reads it).
 */
function storeFor(
  name: string,
  counted: boolean,
  synchronous: "NORMAL" | "FULL",
): SqliteTaskStore {
  const path = `${dir}/${name}.db`;
  {
    using db = openDatabase(path, { driver: "ffi" });
    db.exec("PRAGMA journal_mode = WAL");
    migrate(db, path);
    if (!counted) {
      db.exec(
        "DROP TRIGGER tasks_count_insert; DROP TRIGGER tasks_count_delete; " +
          "DROP TRIGGER tasks_count_update;",
      );
    }
  }
  const store = SqliteTaskStore.open(path, { driver: "ffi", synchronous });
  globalThis.addEventListener("unload", () => void store.close());
  return store;
}

for (const synchronous of ["NORMAL", "FULL"] as const) {
  for (const counted of [false, true]) {
    const label = counted ? "with counting triggers" : "without triggers";
    Deno.bench({
      name:
        `ffi ${synchronous}: commit ${COMMIT_TASKS} inserts + ${COMMIT_TASKS} settles, ${label}`,
      group: `store commit: counting triggers, synchronous ${synchronous}`,
      baseline: !counted,
      fn: groupCommit(
        storeFor(`counts-${synchronous}-${counted}`, counted, synchronous),
      ),
    });
  }
}
