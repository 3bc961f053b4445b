/**
 * The Sluice command line.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-ffi --allow-sys cli.ts --benchmark
 * deno run cli.ts --help
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runBaseline } from "./input/baseline.ts";
import { generateTasks } from "./input/generate_tasks.ts";
import { VERSION } from "./mod.ts";

const USAGE = `Sluice ${VERSION}: a Deno-native task queue

Usage:
  cli.ts --benchmark [--tasks N] [--producers 50,100]
  cli.ts --help | --version

Options:
  --benchmark        Run the baseline on generated tasks and report throughput
  --tasks N          Tasks per run (default 200)
  --producers LIST   Comma-separated producer counts (default 50,100)
  -h, --help         Show this help
  --version          Show the version
`;

/** Thrown for a bad command line; the CLI prints it with the usage and exits 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const encoder = new TextEncoder();
function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}
function err(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

function positiveInteger(text: string, name: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`${name} must be a positive integer, got "${text}"`);
  }
  return value;
}

async function benchmark(
  tasksText: string,
  producersText: string,
): Promise<void> {
  const count = positiveInteger(tasksText, "--tasks");
  const producers = producersText.split(",").map((p) =>
    positiveInteger(p.trim(), "--producers")
  );
  const tasks = generateTasks(count, { seed: 1 });
  out(`impl       producers  tasks  seconds  tasks/s\n`);
  for (const p of producers) {
    const { processed, seconds } = await runBaseline(tasks, { producers: p });
    out(
      `baseline   ${String(p).padStart(9)}  ${String(processed).padStart(5)}  ${
        seconds.toFixed(2).padStart(7)
      }  ${(processed / seconds).toFixed(1).padStart(7)}\n`,
    );
  }
}

/**
 * Runs the CLI with `args` and returns the exit code: 0 ok, 1 runtime
 * failure, 2 usage error.
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
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        benchmark: { type: "boolean" },
        tasks: { type: "string", default: "200" },
        producers: { type: "string", default: "50,100" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
    if (values.help) {
      out(USAGE);
      return 0;
    }
    if (values.version) {
      out(`${VERSION}\n`);
      return 0;
    }
    if (values.benchmark) {
      await benchmark(values.tasks, values.producers);
      return 0;
    }
    throw new UsageError("nothing to do");
  } catch (error) {
    const usage = error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
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
