/**
 * Durable end-to-end throughput of no-op tasks with 1, 2 and 4 `cli.ts
 * start` processes on one PostgreSQL schema, and 1 process on a SQLite
 * file for comparison.
 *
 * ```sh
 * SLUICE_TEST_PG=postgres://postgres@127.0.0.1:5432/test \
 *   deno run -A bench/postgres_bench.ts [--tasks 20000] [--concurrency 64] \
 *   [--out results/postgres_bench.json]
 * ```
 *
 * Each run: a fresh schema (or SQLite file), `--tasks` no-op tasks
 * pre-submitted with `cli.ts submit`, then the clock starts as the `start`
 * processes are spawned and stops when the store counts every task
 * succeeded (read every 20 ms). `tasks/s` divides by that wall time, so it
 * includes process start-up; `steady tasks/s` counts from the first
 * success to the last. The schema or file is removed afterwards. Prints a
 * table and writes JSON.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { PostgresTaskStore } from "../lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "../lib/store/sqlite/sqlite_store.ts";
import type { TaskStore } from "../lib/store/store.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const encoder = new TextEncoder();

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** One measured configuration. */
interface BenchRow {
  store: "postgres" | "sqlite";
  processes: number;
  tasks: number;
  seconds: number;
  tasks_per_s: number;
  steady_tasks_per_s: number;
}

async function run(args: string[]): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(
      `Cannot run cli.ts ${args[0]}: exit ${output.code}: ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}

async function measure(
  store: "postgres" | "sqlite",
  processes: number,
  tasks: number,
  concurrency: number,
  pg: string | undefined,
): Promise<BenchRow> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-pg-bench-" });
  const schema = `sluice_bench_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
  const db = store === "postgres"
    ? ["--db", pg!, "--pg-schema", schema]
    : ["--db", `${dir}/bench.db`];
  const children: Deno.ChildProcess[] = [];
  let inspect: TaskStore | undefined;
  try {
    await run(["submit", ...db, "--type", "noop", "--count", String(tasks)]);
    inspect = store === "postgres"
      ? await PostgresTaskStore.open(pg!, { schema, max: 1, notify: false })
      : SqliteTaskStore.open(`${dir}/bench.db`, { readonly: true });
    const started = performance.now();
    for (let i = 0; i < processes; i++) {
      children.push(
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CLI,
            "start",
            ...db,
            "--workers",
            "1",
            "--concurrency",
            String(concurrency),
            "--log-level",
            "error",
          ],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    let first = NaN;
    for (;;) {
      const { counts } = await inspect.status(Date.now());
      if (Number.isNaN(first) && counts.succeeded > 0) {
        first = performance.now();
      }
      if (counts.succeeded >= tasks) break;
      if (performance.now() - started > 120_000) {
        throw new Error(
          `Cannot finish ${store} x${processes}: ${counts.succeeded} of ${tasks} after 120 s`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const ended = performance.now();
    const seconds = (ended - started) / 1000;
    return {
      store,
      processes,
      tasks,
      seconds: Number(seconds.toFixed(3)),
      tasks_per_s: Math.round(tasks / seconds),
      steady_tasks_per_s: Math.round(tasks / ((ended - first) / 1000)),
    };
  } finally {
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(children.map((child) => child.status));
    await inspect?.close();
    if (store === "postgres") await PostgresTaskStore.drop(pg!, { schema });
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      tasks: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "64" },
      out: { type: "string", default: "results/postgres_bench.json" },
    },
  });
  const tasks = Number(values.tasks);
  const concurrency = Number(values.concurrency);
  const pg = Deno.env.get("SLUICE_TEST_PG") ?? Deno.env.get("SLUICE_DB");
  if (pg === undefined || !/^postgres(?:ql)?:\/\//.test(pg)) {
    throw new Error(
      "Cannot run the PostgreSQL benchmark: set SLUICE_TEST_PG to a postgres:// URL",
    );
  }
  const plan: Array<["postgres" | "sqlite", number]> = [
    ["postgres", 1],
    ["postgres", 2],
    ["postgres", 4],
    ["sqlite", 1],
  ];
  const rows: BenchRow[] = [];
  print(
    `store     processes  tasks   seconds  tasks/s  steady tasks/s\n`,
  );
  for (const [store, processes] of plan) {
    const row = await measure(store, processes, tasks, concurrency, pg);
    rows.push(row);
    print(
      `${store.padEnd(10)}${String(processes).padStart(9)}  ${
        String(tasks).padStart(5)
      }  ${row.seconds.toFixed(2).padStart(8)}  ${
        String(row.tasks_per_s).padStart(7)
      }  ${String(row.steady_tasks_per_s).padStart(14)}\n`,
    );
  }
  const report = {
    started_at: new Date().toISOString(),
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    config: { tasks, concurrency, workers_per_process: 1 },
    rows,
  };
  await Deno.mkdir(new URL(".", `file://${Deno.cwd()}/${values.out}`), {
    recursive: true,
  });
  await Deno.writeTextFile(values.out, JSON.stringify(report, null, 2) + "\n");
  print(`\nwrote ${values.out}\n`);
}
