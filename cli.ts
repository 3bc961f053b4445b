/**
 * The Sluice command line.
 *
 * ```sh
 * deno run -A cli.ts run --tasks input/sample_tasks_small.json --objects input/objects --db :memory:
 * deno run -A cli.ts start --db work/tasks.db --workers 2
 * deno run -A cli.ts submit --db work/tasks.db --type noop --count 10
 * deno run -A cli.ts status --db work/tasks.db --json
 * deno run -A cli.ts purge --db work/tasks.db --older-than 7d --dry-run
 * deno run -A cli.ts schedule add nightly --db work/tasks.db --cron "0 3 * * *" --type noop
 * deno run -A cli.ts start --db postgres://user@host/db --pg-schema sluice
 * deno run -A cli.ts --benchmark
 * ```
 *
 * `--db` (or `SLUICE_DB`) is a SQLite file path, or a `postgres://` URL:
 * then every command works on the queue in the `--pg-schema` schema of
 * that database, so `start` processes on many hosts share one queue.
 *
 * Configuration: flags win over `SLUICE_*` environment variables (see
 * `.env.example`, loadable with `deno run --env-file`), which win over
 * defaults. Exit codes: 0 ok, 1 runtime failure, 2 usage error.
 *
 * Each command lives in its own module under `lib/cli/`; this file only
 * dispatches to them and turns errors into exit codes.
 *
 * @module
 */
import { BENCHMARK_OPTIONS } from "./lib/cli/benchmark_options.ts";
import {
  type Command,
  helpText,
  parseCommand,
  UsageError,
} from "./lib/cli/command.ts";
import { ConfigError } from "./lib/cli/config.ts";
import { err, out, OutputClosedError } from "./lib/cli/output.ts";
import { VERSION } from "./lib/version.ts";

/**
 * Each command's module, loaded only when the command runs: `submit` does
 * not load the worker pool, `status` not the benchmark, and so on.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  run: async () => (await import("./lib/cli/run.ts")).run,
  submit: async () => (await import("./lib/cli/submit.ts")).submit,
  start: async () => (await import("./lib/cli/start.ts")).start,
  status: async () => (await import("./lib/cli/status.ts")).status,
  monitor: async () => (await import("./lib/cli/monitor.ts")).monitor,
  dlq: async () => (await import("./lib/cli/dlq.ts")).dlq,
  export: async () => (await import("./lib/cli/export.ts")).exportTasks,
  purge: async () => (await import("./lib/cli/purge.ts")).purge,
  schedule: async () => (await import("./lib/cli/schedule.ts")).schedule,
  cancel: async () => (await import("./lib/cli/cancel.ts")).cancel,
  delete: async () => (await import("./lib/cli/cancel.ts")).deleteTasks,
  pause: async () => (await import("./lib/cli/pause.ts")).pause,
  resume: async () => (await import("./lib/cli/pause.ts")).resume,
  queues: async () => (await import("./lib/cli/pause.ts")).queues,
};

const USAGE = `Sluice ${VERSION}: a Deno-native task queue

${
  helpText({
    usage: [
      "cli.ts <command> [options]        (each command has --help)",
      "cli.ts --benchmark [options]",
      "cli.ts --help | --version",
    ],
    about: `
Commands:
  run       Process a task file in this process and print a summary
  submit    Enqueue tasks into a database another process works on
  start     Run a long-lived worker process on a database
  status    Counts by state, depth, oldest age and throughput of a database
  monitor   Refresh status in place, with rates; or stream it as JSON/CSV
  dlq       List, show and requeue dead-lettered tasks
  export    Dump every task, every field, as JSON or CSV
  purge     Delete finished tasks by age and count (or count them: --dry-run)
  schedule  Add, list and remove schedules: tasks submitted at cron ticks
  cancel    Cancel tasks: never run, or stop a running one (ctx.signal)
  delete    Delete tasks that are not running
  pause     Pause named queues in every process (resume undoes it)
  resume    Resume paused queues
  queues    List paused and resumed queues

Benchmark: the baseline against the optimized queue, 30 ms of simulated
I/O per task (cli.ts --benchmark --help).

Exit codes: 0 ok, 1 runtime failure, 2 usage error.
Flags win over SLUICE_* environment variables, which win over defaults.`,
    options: [
      ...BENCHMARK_OPTIONS,
      ["--version", "Show the version"],
    ],
  })
}`;

const TOP_LEVEL = {
  usage: USAGE,
  flags: { version: { type: "boolean" } },
} as const;

async function dispatch(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first !== undefined && !first.startsWith("-")) {
    const load = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (load === undefined) {
      throw new UsageError(`unknown command ${JSON.stringify(first)}`);
    }
    return await (await load())(rest);
  }
  if (args.includes("--benchmark")) {
    return await (await import("./lib/cli/benchmark.ts")).benchmark(args);
  }
  const parsed = parseCommand(args, TOP_LEVEL);
  if (parsed === undefined) {
    out(USAGE);
    return 0;
  }
  if (parsed.boolean("version")) {
    out(`${VERSION}\n`);
    return 0;
  }
  throw new UsageError("nothing to do");
}

/**
 * Runs the CLI with `args` and returns the exit code: 0 ok, 1 runtime
 * failure, 2 usage error (printed as `error: ...` on stderr). A reader
 * that closes stdout early ends the command quietly with 0.
 *
 * @param args Command-line arguments, without the program name.
 * @returns The process exit code.
 *
 * @example Printing the version
 * ```ts
 * import { main } from "@sluice/sluice/cli";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["--version"]), 0);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await dispatch(args);
  } catch (error) {
    if (error instanceof OutputClosedError) return 0;
    const usage = error instanceof UsageError ||
      error instanceof ConfigError ||
      String((error as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS");
    err(`error: ${(error as Error).message}\n`);
    if (usage) {
      err("Run with --help for usage.\n");
      return 2;
    }
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
