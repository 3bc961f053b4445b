/**
 * Schedule soak: does a schedule every second run each tick exactly once
 * when several `start` processes share the database? The run:
 * `cli.ts schedule add` a `* * * * * *` schedule of `noop` tasks, start
 * `--processes` `cli.ts start` processes on one database, let them run
 * for `--seconds`, stop them (SIGTERM), then read every task back and
 * count, per tick second of the run: tasks inserted (0 = missed, 2+ =
 * duplicate), attempts charged, and the delay from the tick to the
 * insert.
 *
 * ```sh
 * deno run -A bench/schedule_soak.ts --seconds 20 --processes 3
 * deno run -A bench/schedule_soak.ts --db postgres://postgres@127.0.0.1:5432/test --seconds 20
 * ```
 *
 * Flags: `--seconds N` (20), `--processes N` (3), `--db PATH|URL` (a
 * SQLite file in a temporary directory, removed after; a PostgreSQL URL
 * gets a fresh schema, dropped after).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { openStore } from "../lib/store/open_store.ts";
import { PostgresTaskStore } from "../lib/store/postgres/postgres_store.ts";

const encoder = new TextEncoder();
function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "20" },
    processes: { type: "string", default: "3" },
    db: { type: "string" },
  },
});
const seconds = Number(values.seconds);
const processes = Number(values.processes);
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const postgres = values.db?.startsWith("postgres") ?? false;
const dir = values.db === undefined ? await Deno.makeTempDir() : undefined;
const url = values.db ?? `${dir}/schedule.db`;
const schema = `sluice_soak_${crypto.randomUUID().slice(0, 8)}`;
const dbArgs = postgres ? ["--db", url, "--pg-schema", schema] : ["--db", url];

async function cli(args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CLI, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `cli.ts ${args[0]} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
}

try {
  await cli([
    "schedule",
    "add",
    "beat",
    ...dbArgs,
    "--cron",
    "* * * * * *",
    "--type",
    "noop",
  ]);
  const children = Array.from(
    { length: processes },
    () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--no-check",
          CLI,
          "start",
          ...dbArgs,
          "--workers",
          "1",
          "--log-level",
          "warn",
        ],
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
  );
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const stopped = Date.now();
  for (const child of children) child.kill("SIGTERM");
  const codes = await Promise.all(children.map((c) => c.status));

  const store = await openStore(url, { postgres: { schema } });
  const tasks = (await store.list())
    .filter((task) => task.idempotencyKey?.startsWith("schedule:beat:"));
  const status = await store.status(Date.now());
  const kind = store.kind;
  await store.close();
  // The seconds every process was surely up for: from the first tick run
  // to the last second before the stop.
  const byTick = new Map<number, number>();
  for (const task of tasks) {
    byTick.set(task.runAt, (byTick.get(task.runAt) ?? 0) + 1);
  }
  const ticks = [...byTick.keys()].sort((a, b) => a - b);
  const first = ticks[0] ?? started;
  const last = Math.floor((stopped - 1) / 1000) * 1000;
  let missed = 0;
  for (let tick = first; tick <= last; tick += 1000) {
    if (!byTick.has(tick)) missed++;
  }
  const duplicates = [...byTick.values()].filter((n) => n > 1).length;
  const delays = tasks.map((task) => task.createdAt - task.runAt)
    .sort((a, b) => a - b);
  const pct = (p: number): number =>
    delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] ?? NaN;
  const extraAttempts = tasks.filter((task) => task.attempts > 1).length;
  print(`store: ${kind}, processes: ${processes}, run: ${seconds} s`);
  print(`exit codes: ${codes.map((c) => c.code).join(" ")}`);
  print(
    `ticks in the period: ${
      (last - first) / 1000 + 1
    }, run: ${ticks.length}, missed: ${missed}, run twice: ${duplicates}`,
  );
  print(
    `rows inserted: ${status.totals.submitted}, succeeded: ${status.counts.succeeded}, run more than once: ${extraAttempts}`,
  );
  print(
    `tick to insert: p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${
      delays[delays.length - 1] ?? NaN
    } ms`,
  );
  print(
    duplicates === 0 && extraAttempts === 0 && missed === 0
      ? "verdict: every tick ran exactly once"
      : "verdict: FAILED",
  );
} finally {
  if (postgres) await PostgresTaskStore.drop(url, { schema });
  if (dir !== undefined) await Deno.remove(dir, { recursive: true });
}
