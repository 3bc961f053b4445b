import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import postgres from "npm:postgres@3.4.9";
import { PostgresTaskStore } from "../../lib/store/postgres/postgres_store.ts";
import { isPending, type TempDir, tempDir, waitFor } from "../_helpers.ts";

// Several `cli.ts start` processes on one PostgreSQL schema, against a real
// server named by SLUICE_TEST_PG (for example
// postgres://postgres@127.0.0.1:5432/test); without it every case is
// registered as ignored. Each case works in its own schema, drops it at the
// end, and kills every child process it started.
const PG = Deno.env.get("SLUICE_TEST_PG") || undefined;
const ignore = PG === undefined;
const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const HANDLERS = new URL("../fixtures/effect_handlers.ts", import.meta.url)
  .href;
const decoder = new TextDecoder();

function freshSchema(): string {
  return `sluice_cluster_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<Output> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function ok(
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const result = await cli(args, env);
  assert.equal(
    result.code,
    0,
    `${args.join(" ")} exited ${result.code}: ${result.stderr}`,
  );
  return result.stdout;
}

/** A `start` process; its stderr is collected until it exits. */
interface Worker {
  child: Deno.ChildProcess;
  pid: number;
  stderr: Promise<string>;
}

/**
 * One schema, a temp directory for effect logs, the `start` processes and
 * an admin connection; disposing kills the processes, closes the
 * connection, drops the schema and removes the directory.
 */
interface Cluster extends AsyncDisposable {
  schema: string;
  dir: TempDir;
  sql: postgres.Sql;
  start(extra?: string[]): Worker;
  submit(count: number, ms: number, prefix?: string): Promise<void>;
  counts(): Promise<Record<string, number>>;
  waitSucceeded(total: number, timeoutMs: number): Promise<void>;
}

async function cluster(): Promise<Cluster> {
  const schema = freshSchema();
  const dir = await tempDir("sluice-cluster-");
  const workers: Worker[] = [];
  const sql = postgres(PG!, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "sluice-cluster-test" },
  });
  let files = 0;
  const db = ["--db", PG!, "--pg-schema", schema];
  const self: Cluster = {
    schema,
    dir,
    sql,
    start(extra = []): Worker {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLI,
          "start",
          ...db,
          "--workers",
          "1",
          "--concurrency",
          "16",
          "--handlers",
          HANDLERS,
          "--log-level",
          "warn",
          ...extra,
        ],
        env: { SLUICE_EFFECT_LOG: dir.path },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const worker = {
        child,
        pid: child.pid,
        stderr: new Response(child.stderr).text(),
      };
      workers.push(worker);
      return worker;
    },
    async submit(count, ms, prefix = "k"): Promise<void> {
      const file = `${dir.path}/tasks-${files++}.json`;
      const tasks = Array.from({ length: count }, (_, i) => ({
        type: "effect",
        payload: { ms },
        idempotencyKey: `${prefix}${i}`,
      }));
      await Deno.writeTextFile(file, JSON.stringify(tasks));
      const ids = await ok([
        "submit",
        ...db,
        "--file",
        file,
        "--log-level",
        "warn",
      ]);
      assert.equal(ids.trim().split("\n").length, count);
    },
    async counts(): Promise<Record<string, number>> {
      const rows = await sql.unsafe(
        `SELECT status, count(*)::int AS n FROM "${schema}".tasks GROUP BY status`,
      );
      const counts: Record<string, number> = {};
      for (const row of rows) counts[row["status"]] = row["n"];
      return counts;
    },
    async waitSucceeded(total, timeoutMs): Promise<void> {
      // One query per 100 ms at most: the predicate is called every few ms.
      let last = 0;
      await waitFor(async () => {
        if (performance.now() - last < 100) return false;
        last = performance.now();
        return (await self.counts())["succeeded"] === total;
      }, { timeoutMs, what: `${total} succeeded tasks` });
    },
    async [Symbol.asyncDispose](): Promise<void> {
      try {
        for (const worker of workers) {
          try {
            worker.child.kill("SIGKILL");
          } catch {
            // Already exited.
          }
        }
        await Promise.all(workers.map((w) => w.child.status));
        await Promise.all(workers.map((w) => w.stderr));
      } finally {
        await sql.end({ timeout: 5 });
        await PostgresTaskStore.drop(PG!, { schema });
        await dir[Symbol.asyncDispose]();
      }
    },
  };
  return self;
}

/** One recorded execution of a handler (see tests/fixtures/effect_handlers.ts). */
interface Execution {
  pid: number;
  attempt: number;
  at: number;
}

/** Executions by idempotency key, from every process's log. */
async function readEffects(dir: string): Promise<Map<string, Execution[]>> {
  const byKey = new Map<string, Execution[]>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".log")) continue;
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    // A process killed mid-write may leave a last line without its newline.
    const lines = text.split("\n").slice(0, -1);
    for (const line of lines) {
      const [key, pid, attempt, , at] = line.split(" ");
      const list = byKey.get(key!) ?? [];
      list.push({ pid: Number(pid), attempt: Number(attempt), at: Number(at) });
      byKey.set(key!, list);
    }
  }
  for (const list of byKey.values()) list.sort((a, b) => a.at - b.at);
  return byKey;
}

function keys(count: number, prefix = "k"): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

// -- CLI commands on PostgreSQL ---------------------------------------------

Deno.test({
  name:
    "`cli.ts status`, `monitor`, `dlq list` and `export` on a PostgreSQL schema that does not exist say so and create nothing",
  ignore,
  async fn(): Promise<void> {
    const schema = freshSchema();
    const env = { SLUICE_DB: PG!, SLUICE_PG_SCHEMA: schema };
    for (
      const args of [
        ["status", "--json"],
        ["monitor", "--once"],
        ["dlq", "list"],
        ["export", "--format", "json"],
      ]
    ) {
      const result = await cli(args, env);
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`schema "${schema}" holds no Sluice queue`),
        args.join(" "),
      );
    }
    const sql = postgres(PG!, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`
        SELECT 1 FROM information_schema.schemata WHERE schema_name = ${schema}`;
      assert.equal(rows.length, 0, "no schema was created");
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name:
    "`cli.ts submit`, `status`, `monitor`, `dlq` and `export` work on PostgreSQL through SLUICE_DB and SLUICE_PG_SCHEMA",
  ignore,
  async fn(): Promise<void> {
    await using c = await cluster();
    const env = { SLUICE_DB: PG!, SLUICE_PG_SCHEMA: c.schema };
    const submitted = JSON.parse(
      await ok([
        "submit",
        "--type",
        "noop",
        "--count",
        "3",
        "--json",
        "--log-level",
        "warn",
      ], env),
    ) as { submitted: number; ids: string[] };
    assert.equal(submitted.submitted, 3);
    const failing = (await ok([
      "submit",
      "--type",
      "fail",
      "--payload",
      '{"error_message":"boom"}',
      "--max-attempts",
      "1",
      "--log-level",
      "warn",
    ], env)).trim();

    const before = JSON.parse(await ok(["status", "--json"], env)) as {
      counts: Record<string, number>;
      db: string;
    };
    assert.equal(before.counts["queued"], 4);
    assert.match(before.db, new RegExp(`schema ${c.schema}`));

    // A start process on the same schema runs them: 3 succeed, 1 dies.
    const worker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI,
        "start",
        "--workers",
        "1",
        "--log-level",
        "error",
      ],
      env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      let last = 0;
      await waitFor(async () => {
        if (performance.now() - last < 100) return false;
        last = performance.now();
        const counts = await c.counts();
        return counts["succeeded"] === 3 && counts["dead"] === 1;
      }, { timeoutMs: 20_000, what: "3 succeeded and 1 dead" });
    } finally {
      worker.kill("SIGKILL");
      await worker.status;
    }

    const frame = JSON.parse(
      await ok(["monitor", "--once", "--format", "json"], env),
    ) as { counts: Record<string, number>; dead_letters: number };
    assert.equal(frame.counts["succeeded"], 3);
    assert.equal(frame.dead_letters, 1);

    const dead = JSON.parse(await ok(["dlq", "list", "--json"], env)) as {
      id: string;
    }[];
    assert.deepEqual(dead.map((t) => t.id), [failing]);
    const shown = JSON.parse(
      await ok(["dlq", "show", failing, "--json"], env),
    ) as { last_error: string };
    assert.match(shown.last_error, /boom/);

    const exported = JSON.parse(
      await ok(["export", "--format", "json"], env),
    ) as { id: string; status: string }[];
    assert.equal(exported.length, 4);
    assert.deepEqual(
      exported.map((t) => t.id).sort(),
      [...submitted.ids, failing].sort(),
    );
    const csv = await ok(["export", "--format", "csv"], env);
    assert.equal(csv.trim().split("\n").length, 5);

    assert.deepEqual(
      JSON.parse(await ok(["dlq", "requeue", "--all", "--json"], env)),
      { requeued: 1 },
    );
    assert.equal((await c.counts())["queued"], 1);
  },
});

Deno.test({
  name:
    "`cli.ts --benchmark --db postgres://` runs each optimized run in a fresh schema and drops it",
  ignore,
  async fn(): Promise<void> {
    await using out = await tempDir();
    const sql = postgres(PG!, { max: 1, onnotice: () => {} });
    try {
      const schemas = async (): Promise<number> => {
        const [row] = await sql`SELECT count(*)::int AS n FROM pg_namespace
          WHERE nspname LIKE 'sluice\\_bench\\_%'`;
        return row!["n"];
      };
      const before = await schemas();
      const stdout = await ok([
        "--benchmark",
        "--db",
        PG!,
        "--tasks",
        "20",
        "--producers",
        "4",
        "--workers",
        "1",
        "--concurrency",
        "8",
        "--out",
        out.path,
      ]);
      assert.match(stdout, /optimized/);
      const report = JSON.parse(
        await Deno.readTextFile(`${out.path}/benchmark.json`),
      ) as {
        config: { db: string };
        machine: { sqlite_driver: string };
        runs: { impl: string; error_rate: number }[];
      };
      assert.equal(report.config.db, "postgres");
      assert.equal(report.machine.sqlite_driver, "postgres");
      assert.equal(
        report.runs.find((r) => r.impl === "optimized")?.error_rate,
        0,
      );
      assert.equal(await schemas(), before);
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
});

// -- several processes on one queue -----------------------------------------

Deno.test({
  name:
    "`cli.ts start` x4 runs 10,000 tasks exactly once each on one PostgreSQL schema",
  ignore,
  async fn(): Promise<void> {
    await using c = await cluster();
    await c.submit(10_000, 0);
    const workers = [c.start(), c.start(), c.start(), c.start()];
    await c.waitSucceeded(10_000, 60_000);
    assert.deepEqual(await c.counts(), { succeeded: 10_000 });

    const effects = await readEffects(c.dir.path);
    const pids = new Set(workers.map((w) => w.pid));
    const ran = new Map<number, number>();
    for (const key of keys(10_000)) {
      const executions = effects.get(key) ?? [];
      assert.equal(executions.length, 1, `${key} ran ${executions.length}x`);
      assert.ok(pids.has(executions[0]!.pid));
      assert.equal(executions[0]!.attempt, 1);
      ran.set(executions[0]!.pid, (ran.get(executions[0]!.pid) ?? 0) + 1);
    }
    assert.equal(effects.size, 10_000);
    // The work was shared: more than one process ran tasks.
    assert.ok(ran.size > 1, `one process ran everything: ${[...ran]}`);
  },
});

Deno.test({
  name:
    "`cli.ts start` tasks of a SIGKILLed process are reclaimed after the lease and finish elsewhere",
  ignore,
  async fn(): Promise<void> {
    await using c = await cluster();
    // 10 ms per task: a process always has executions in flight.
    await c.submit(10_000, 10);
    const lease = ["--lease-ms", "3000", "--task-timeout-ms", "1000"];
    const workers = [0, 1, 2, 3].map(() => c.start(lease));
    const victim = workers[0]!;
    let last = 0;
    await waitFor(async () => {
      if (performance.now() - last < 50) return false;
      last = performance.now();
      return ((await c.counts())["succeeded"] ?? 0) >= 2_500;
    }, { timeoutMs: 30_000, what: "2500 succeeded tasks" });
    // The victim must have been running tasks when it dies.
    await waitFor(async () => {
      const log = await Deno.stat(`${c.dir.path}/${victim.pid}.log`)
        .catch(() => null);
      return log !== null && log.size > 0;
    }, { timeoutMs: 10_000, what: "the victim's first task" });
    const killedAt = Date.now();
    victim.child.kill("SIGKILL");
    assert.equal((await victim.child.status).signal, "SIGKILL");

    await c.waitSucceeded(10_000, 60_000);
    assert.deepEqual(await c.counts(), { succeeded: 10_000 });
    for (const worker of workers.slice(1)) {
      assert.ok(await isPending(worker.child.status), "a survivor exited");
    }

    const effects = await readEffects(c.dir.path);
    let reclaimed = 0;
    for (const key of keys(10_000)) {
      const executions = effects.get(key) ?? [];
      assert.ok(executions.length >= 1, `${key} never ran`);
      // Only the killed process's executions may be followed by another.
      const earlier = executions.slice(0, -1);
      for (const e of earlier) {
        assert.equal(e.pid, victim.pid, `${key} ran twice: ${executions}`);
      }
      if (earlier.length > 0) {
        reclaimed++;
        const final = executions.at(-1)!;
        assert.notEqual(final.pid, victim.pid);
        // Attempts are charged when a handler starts: the re-run carries
        // the victim's charge when its start reached the database first.
        assert.ok(final.attempt >= earlier.at(-1)!.attempt);
        // The victim kept its leases alive until it died: no other process
        // ran the task before then.
        assert.ok(final.at >= killedAt, `${key} re-ran before the kill`);
      }
    }
    let victimRan = 0;
    for (const list of effects.values()) {
      for (const e of list) if (e.pid === victim.pid) victimRan++;
    }
    assert.ok(
      reclaimed > 0,
      `no started task re-ran (victim ran ${victimRan})`,
    );
    // No task carries more charges than it had handler starts: the runs
    // it logged, plus at most one the victim started and never finished.
    const rows = await c.sql.unsafe(
      `SELECT idempotency_key AS key, attempts FROM "${c.schema}".tasks WHERE attempts > 1`,
    );
    for (const row of rows) {
      const runs = effects.get(row["key"])?.length ?? 0;
      assert.ok(
        row["attempts"] <= runs + 1,
        `${row["key"]} is charged ${row["attempts"]} times for ${runs} runs`,
      );
    }
  },
});

Deno.test({
  name:
    "`cli.ts start` processes reconnect and lose no task when their PostgreSQL backends are terminated",
  ignore,
  async fn(): Promise<void> {
    await using c = await cluster();
    await c.submit(10_000, 1);
    const lease = ["--lease-ms", "3000", "--task-timeout-ms", "1000"];
    const workers = [0, 1, 2, 3].map(() => c.start(lease));
    let last = 0;
    await waitFor(async () => {
      if (performance.now() - last < 50) return false;
      last = performance.now();
      return ((await c.counts())["succeeded"] ?? 0) >= 2_500;
    }, { timeoutMs: 30_000, what: "2500 succeeded tasks" });

    // Only this schema's connections: other users of the server are left be.
    const terminate = async (): Promise<number> => {
      const rows = await c.sql`SELECT pg_terminate_backend(pid) AS done
        FROM pg_stat_activity
        WHERE application_name = ${`sluice/${c.schema}`}
          AND pid <> pg_backend_pid()`;
      return rows.filter((r) => r["done"] === true).length;
    };
    // Every process holds a pool connection and a LISTEN connection.
    assert.ok((await terminate()) >= 4);

    // Work accepted after the drop is taken too.
    await c.submit(2_000, 1, "late");
    last = 0;
    await waitFor(async () => {
      if (performance.now() - last < 50) return false;
      last = performance.now();
      return ((await c.counts())["succeeded"] ?? 0) >= 7_000;
    }, { timeoutMs: 30_000, what: "7000 succeeded tasks" });
    assert.ok((await terminate()) >= 4);

    await c.waitSucceeded(12_000, 60_000);
    assert.deepEqual(await c.counts(), { succeeded: 12_000 });
    for (const worker of workers) {
      assert.ok(await isPending(worker.child.status), "a worker exited");
    }
    const effects = await readEffects(c.dir.path);
    for (const key of [...keys(10_000), ...keys(2_000, "late")]) {
      assert.ok((effects.get(key)?.length ?? 0) >= 1, `${key} never ran`);
    }
  },
});
