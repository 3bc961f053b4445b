/**
 * `cli.ts --benchmark`: the baseline against the optimized queue, printed
 * as a table and written as JSON, CSV and SVG.
 *
 * @module
 */
import {
  type BenchmarkProgress,
  formatBenchmarkTable,
  runBenchmark,
  writeBenchmarkReport,
} from "../benchmark/benchmark.ts";
import { isPostgresUrl } from "../store/open_store.ts";
import {
  type Command,
  defineCommand,
  helpText,
  UsageError,
} from "./command.ts";
import { ENV_NAMES, readEnv } from "./config.ts";
import { err, out } from "./output.ts";
import { Progress } from "./progress.ts";
import { BENCHMARK_OPTIONS } from "./benchmark_options.ts";

const USAGE = helpText({
  usage: ["cli.ts --benchmark [options]"],
  about: `
Runs the baseline (input/baseline.ts) and the optimized queue on the same
tasks, 30 ms of simulated I/O each, for each producer count. Run with -A to
record the CPU model: Deno reads /proc only with --allow-all.`,
  options: BENCHMARK_OPTIONS,
});

function producerCounts(text: string): number[] {
  return text.split(",").map((part) => {
    const value = part.trim();
    if (!/^\d+$/.test(value) || Number(value) < 1) {
      throw new UsageError(
        `--producers must be a comma-separated list of integers >= 1, got ${
          JSON.stringify(text)
        }`,
      );
    }
    return Number(value);
  });
}

/** `cli.ts --benchmark`. */
export const benchmark: Command = defineCommand({
  usage: USAGE,
  flags: {
    benchmark: { type: "boolean" },
    tasks: { type: "integer", min: 1, max: 10_000_000 },
    producers: { type: "string" },
    workers: { type: "integer", min: 1, max: 1024 },
    concurrency: { type: "integer", min: 1, max: 65_536 },
    out: { type: "string" },
    db: { type: "string" },
  },
}, async (parsed) => {
  const producers = producerCounts(parsed.string("producers") ?? "50,100");
  // SLUICE_DB names a database file, not a directory: only a PostgreSQL URL
  // in it is taken for the benchmark.
  const envDb = readEnv([ENV_NAMES.db])[ENV_NAMES.db];
  const db = parsed.string("db") ??
    (envDb !== undefined && isPostgresUrl(envDb) ? envDb : undefined);
  const outDir = parsed.string("out") ?? "results";
  // SQLite files go under the output directory unless --db names another,
  // so the command writes nowhere else (no system temp directory).
  await Deno.mkdir(outDir, { recursive: true });
  const progress = new Progress();
  let current = "";
  const report = await runBenchmark({
    tasks: parsed.integer("tasks") ?? 1000,
    producers,
    workers: parsed.integer("workers") ?? 2,
    concurrency: parsed.integer("concurrency") ?? 64,
    ...(db !== undefined && isPostgresUrl(db)
      ? { postgresUrl: db }
      : { dbDir: db ?? outDir }),
    onProgress: (p: BenchmarkProgress) => {
      const label = `${p.impl} ${p.producers} producers`;
      if (label !== current) {
        current = label;
        progress.reset(label, p.total);
      }
      progress.update(p.done);
      if (p.done === p.total) {
        progress.clear();
        err(`${label}: ${p.total} tasks done\n`);
      }
    },
  });
  progress.clear();
  out(formatBenchmarkTable(report));
  const files = await writeBenchmarkReport(report, outDir);
  out(`\nwrote ${files.json}, ${files.csv}, ${files.svg}\n`);
  return 0;
});
