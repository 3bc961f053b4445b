/**
 * Question: what do the kept status counts buy and cost? On SQLite, and on
 * PostgreSQL when `SLUICE_TEST_PG` is set:
 *
 * 1. `status()` on a store of `--rows` tasks (1,000,000 by default, built
 *    with one `INSERT … SELECT`), against counting the rows by status as
 *    `status()` did before the counts were kept;
 * 2. `prune()` of 1,000 finished rows per call: how long one call holds
 *    the store (SQLite: the write lock, so every writer waits that long;
 *    PostgreSQL: the rows it deletes and the prune lock only), and on
 *    PostgreSQL the latency of a concurrent group commit with and without
 *    prunes running;
 * 3. the group commit (100 claimed inserts and the 100 settles of the
 *    previous commit) on two fresh stores, one without the counting
 *    triggers, interleaved commit by commit so that both see the same
 *    machine load.
 *
 * ```sh
 * SLUICE_TEST_PG=postgres://postgres@127.0.0.1:5432/test \
 *   deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
 *   --allow-net=127.0.0.1 bench/status_bench.ts [--rows 1000000] \
 *   [--commits 2000] [--out results/status_bench.json]
 * ```
 *
 * Prints one line per measurement (median, p99, max in ms) and, with
 * `--out`, writes them as JSON. Stores are removed afterwards.
 *
 * @module
 */
import { parseArgs } from "node:util";
import postgres from "npm:postgres@3.4.9";
import { uuidv7 } from "../lib/_id.ts";
import { PostgresTaskStore } from "../lib/store/postgres/postgres_store.ts";
import { openDatabase } from "../lib/store/sqlite/open_database.ts";
import { migrate } from "../lib/store/sqlite/schema.ts";
import { SqliteTaskStore } from "../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../lib/store/store.ts";

const encoder = new TextEncoder();

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** One measured quantity, in milliseconds. */
interface Row {
  store: "sqlite" | "postgres";
  what: string;
  samples: number;
  median_ms: number;
  p99_ms: number;
  max_ms: number;
}

const rows: Row[] = [];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function report(store: Row["store"], what: string, times: number[]): Row {
  const sorted = [...times].sort((a, b) => a - b);
  const row: Row = {
    store,
    what,
    samples: times.length,
    median_ms: Number(quantile(sorted, 0.5).toFixed(3)),
    p99_ms: Number(quantile(sorted, 0.99).toFixed(3)),
    max_ms: Number(sorted[sorted.length - 1]!.toFixed(3)),
  };
  rows.push(row);
  print(
    `${store.padEnd(9)}${what.padEnd(64)}${
      row.median_ms.toFixed(3).padStart(10)
    }${row.p99_ms.toFixed(3).padStart(10)}${
      row.max_ms.toFixed(3).padStart(10)
    }\n`,
  );
  return row;
}

/** Times `count` sequential calls of `body`. */
async function timed(
  count: number,
  body: () => Promise<unknown> | unknown,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await body();
    times.push(performance.now() - started);
  }
  return times;
}

/** A group commit as the queue issues it under load. */
function groupCommit(store: TaskStore): () => Promise<void> {
  let previous: { id: string; version: number }[] = [];
  return async () => {
    const now = Date.now();
    const { inserted } = await store.commit({
      settles: previous.map(({ id, version }) => ({
        id,
        version,
        outcome: { kind: "succeeded", result: null, outputKey: null },
        charge: true,
      })),
      inserts: Array.from({ length: 100 }, () => ({
        id: uuidv7(),
        type: "noop",
        idempotencyKey: null,
        payload: { image_key: "img/000001.jpg", size: "200x200" },
        maxAttempts: 3,
        runAt: now,
        claim: true,
      })),
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

/**
 * Runs the two commit functions alternately (which goes first alternates
 * too), `count` commits each, after 100 warm-up commits each.
 */
async function interleaved(
  a: () => Promise<void>,
  b: () => Promise<void>,
  count: number,
): Promise<[number[], number[]]> {
  const times: [number[], number[]] = [[], []];
  const pair = [a, b];
  for (let i = 0; i < count + 100; i++) {
    for (const k of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const started = performance.now();
      await pair[k]!();
      if (i >= 100) times[k]!.push(performance.now() - started);
    }
  }
  return times;
}

const PRUNE = { succeeded: { maxCount: 0 }, dead: { maxCount: 0 } };

/** Prunes of 1,000 to time: 50, or fewer on a small store (98% finished). */
function pruneCount(total: number): number {
  return Math.min(50, Math.floor((total * 0.98) / 1000));
}

async function sqlite(total: number, commits: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-status-bench-" });
  try {
    const path = `${dir}/big.db`;
    await SqliteTaskStore.open(path).close();
    const base = Date.now() - total;
    {
      using db = openDatabase(path);
      const started = performance.now();
      // One statement; the counting triggers fire once per row.
      db.prepare(
        `INSERT INTO tasks (id, type, idempotency_key, payload, status,
          attempts, max_attempts, run_at, created_at, updated_at, result,
          last_error, error_class, version)
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        SELECT printf('%032x', i), 'resize', 'img-' || i || ':thumb',
          '{"image_key":"img/' || i || '.jpg","size":"200x200"}',
          CASE i % 100 WHEN 0 THEN 'dead' WHEN 1 THEN 'queued'
            WHEN 2 THEN 'failed' ELSE 'succeeded' END,
          1, 3, ? + i, ? + i, ? + i,
          CASE WHEN i % 100 > 2 THEN '{"ok":true}' END,
          CASE WHEN i % 100 IN (0, 2) THEN 'Cannot run: bad' END,
          CASE WHEN i % 100 IN (0, 2) THEN 'transient' END, 2
        FROM n`,
      ).run(total, base, base, base);
      print(
        `sqlite: ${total} rows in ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s, ${(Deno.statSync(path).size / total).toFixed(0)} bytes per row\n`,
      );
    }
    await using store = SqliteTaskStore.open(path);
    using raw = openDatabase(path, { readonly: true });
    const old = raw.prepare(
      "SELECT status, count(*) AS n FROM tasks GROUP BY status",
    );
    report(
      "sqlite",
      `status() counting ${total} rows (before)`,
      await timed(5, () => old.all()),
    );
    report(
      "sqlite",
      `status() on ${total} rows`,
      await timed(500, () => store.status(Date.now())),
    );
    report(
      "sqlite",
      "prune() of 1,000 rows (holds the write lock throughout)",
      await timed(pruneCount(total), async () => {
        const { succeeded, dead } = await store.prune(PRUNE, Date.now(), 1000);
        if (succeeded + dead !== 1000) throw new Error("Cannot prune: short");
      }),
    );
    for (const synchronous of ["NORMAL", "FULL"] as const) {
      const stores = [false, true].map((counted) => {
        const file = `${dir}/commit-${synchronous}-${counted}.db`;
        {
          using db = openDatabase(file);
          db.exec("PRAGMA journal_mode = WAL");
          migrate(db, file);
          if (!counted) {
            db.exec(
              "DROP TRIGGER tasks_count_insert; DROP TRIGGER tasks_count_delete; " +
                "DROP TRIGGER tasks_count_update;",
            );
          }
        }
        return SqliteTaskStore.open(file, { synchronous });
      });
      try {
        const [without, counted] = await interleaved(
          groupCommit(stores[0]!),
          groupCommit(stores[1]!),
          commits,
        );
        const a = report(
          "sqlite",
          `commit 100 inserts + 100 settles, ${synchronous}, no triggers`,
          without,
        );
        const b = report(
          "sqlite",
          `commit 100 inserts + 100 settles, ${synchronous}, counting triggers`,
          counted,
        );
        print(
          `         counting triggers / none (median): ${
            (b.median_ms / a.median_ms).toFixed(3)
          }\n`,
        );
      } finally {
        for (const store of stores) await store.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function pg(url: string, total: number, commits: number): Promise<void> {
  const tag = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
  const schemas = [`bench_big_${tag}`, `bench_a_${tag}`, `bench_b_${tag}`];
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const stores: PostgresTaskStore[] = [];
  try {
    const store = await PostgresTaskStore.open(url, {
      schema: schemas[0]!,
      max: 4,
      notify: false,
    });
    stores.push(store);
    const t = `"${schemas[0]}".tasks`;
    const base = Date.now() - total;
    let started = performance.now();
    await admin.unsafe(
      `INSERT INTO ${t} (id, type, idempotency_key, payload, status,
        attempts, max_attempts, run_at, created_at, updated_at, result,
        last_error, error_class, version)
      SELECT lpad(to_hex(i), 32, '0'), 'resize', 'img-' || i || ':thumb',
        jsonb_build_object('image_key', 'img/' || i || '.jpg',
          'size', '200x200'),
        CASE i % 100 WHEN 0 THEN 'dead' WHEN 1 THEN 'queued'
          WHEN 2 THEN 'failed' ELSE 'succeeded' END,
        1, 3, ${base} + i, ${base} + i, ${base} + i,
        CASE WHEN i % 100 > 2 THEN '{"ok":true}'::jsonb END,
        CASE WHEN i % 100 IN (0, 2) THEN 'Cannot run: bad' END,
        CASE WHEN i % 100 IN (0, 2) THEN 'transient' END, 2
      FROM generate_series(1, ${total}) i`,
    );
    const inserted = performance.now() - started;
    started = performance.now();
    await admin.unsafe(`VACUUM ANALYZE ${t}`);
    print(
      `postgres: ${total} rows in ${(inserted / 1000).toFixed(1)} s, ` +
        `VACUUM ANALYZE ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s\n`,
    );
    report(
      "postgres",
      `status() counting ${total} rows (before)`,
      await timed(
        5,
        () => admin.unsafe(`SELECT status, count(*) FROM ${t} GROUP BY status`),
      ),
    );
    report(
      "postgres",
      `status() on ${total} rows`,
      await timed(500, () => store.status(Date.now())),
    );
    // A writer alone, then with prunes running, on the same schema.
    const writer = groupCommit(store);
    report(
      "postgres",
      "concurrent group commit, no prune running",
      await timed(200, writer),
    );
    let pruning = true;
    const during: number[] = [];
    const writing = (async () => {
      while (pruning) during.push(...await timed(1, writer));
    })();
    const prunes = await timed(pruneCount(total), async () => {
      const result = await store.prune(PRUNE, Date.now(), 1000);
      if (result.succeeded + result.dead !== 1000) {
        throw new Error(`Cannot prune: ${JSON.stringify(result)}`);
      }
    });
    pruning = false;
    await writing;
    report("postgres", "prune() of 1,000 rows, beside a writer", prunes);
    report(
      "postgres",
      "concurrent group commit, while prune() runs",
      during,
    );
    report(
      "postgres",
      `status() on ${total} rows after the prunes`,
      await timed(200, () => store.status(Date.now())),
    );
    const pair: PostgresTaskStore[] = [];
    for (const schema of schemas.slice(1)) {
      const s = await PostgresTaskStore.open(url, {
        schema,
        max: 1,
        notify: false,
      });
      stores.push(s);
      pair.push(s);
    }
    for (const name of ["insert", "delete", "update"]) {
      await admin.unsafe(
        `DROP TRIGGER tasks_count_${name} ON "${schemas[1]}".tasks`,
      );
    }
    const [without, counted] = await interleaved(
      groupCommit(pair[0]!),
      groupCommit(pair[1]!),
      Math.min(commits, 1000),
    );
    const a = report(
      "postgres",
      "commit 100 inserts + 100 settles, no triggers",
      without,
    );
    const b = report(
      "postgres",
      "commit 100 inserts + 100 settles, counting triggers",
      counted,
    );
    print(
      `         counting triggers / none (median): ${
        (b.median_ms / a.median_ms).toFixed(3)
      }\n`,
    );
  } finally {
    for (const store of stores) await store.close();
    for (const schema of schemas) {
      await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
    await admin.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rows: { type: "string", default: "1000000" },
      commits: { type: "string", default: "2000" },
      out: { type: "string" },
    },
  });
  const total = Number(values.rows);
  const commits = Number(values.commits);
  print(
    `${"store".padEnd(9)}${"measurement".padEnd(64)}${"median".padStart(10)}${
      "p99".padStart(10)
    }${"max".padStart(10)}\n`,
  );
  await sqlite(total, commits);
  const url = Deno.env.get("SLUICE_TEST_PG");
  if (url !== undefined) await pg(url, total, commits);
  if (values.out !== undefined) {
    await Deno.writeTextFile(
      values.out,
      JSON.stringify(
        {
          started_at: new Date().toISOString(),
          cores: navigator.hardwareConcurrency,
          deno: Deno.version.deno,
          rows: total,
          results: rows,
        },
        null,
        2,
      ) + "\n",
    );
    print(`\nwrote ${values.out}\n`);
  }
}
