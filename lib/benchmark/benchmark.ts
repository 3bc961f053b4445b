/**
 * The benchmark behind `cli.ts --benchmark`: the baseline port
 * (`input/baseline.ts`) against the optimized {@linkcode TaskQueue} on the
 * same generated tasks with the same simulated I/O, at several producer
 * counts, with JSON, CSV, SVG and table output.
 *
 * @module
 */
import { granted } from "../_env.ts";
import { cpus } from "node:os";
import { type BaselineTask, runBaseline } from "../../input/baseline.ts";
import { generateTasks } from "../../input/generate_tasks.ts";
import { renderChart } from "./chart.ts";
import {
  type FaultConfig,
  faultyHandlers,
  SIMULATED_IO_30MS,
} from "../handlers/faults.ts";
import { TaskQueue } from "../queue/task_queue.ts";
import { sqliteDriverInfo } from "../store/sqlite/open_database.ts";
import { isPostgresUrl } from "../store/open_store.ts";
import { PostgresTaskStore } from "../store/postgres/postgres_store.ts";

/** Options for {@linkcode runBenchmark}. Every field is optional. */
export interface BenchmarkOptions {
  /**
   * Tasks per run (the same generated tasks for every run).
   *
   * @default {1000}
   */
  tasks?: number;
  /**
   * Producer counts; each gets a baseline run and an optimized run.
   *
   * @default {[50, 100]}
   */
  producers?: readonly number[];
  /**
   * Worker threads of the optimized queue.
   *
   * @default {2}
   */
  workers?: number;
  /**
   * Tasks at once per worker of the optimized queue (the work is I/O-bound).
   *
   * @default {64}
   */
  concurrency?: number;
  /**
   * Channel capacity of the optimized queue.
   *
   * @default {1024}
   */
  capacity?: number;
  /**
   * Seed of the task generator.
   *
   * @default {1}
   */
  seed?: number;
  /**
   * Simulated I/O per task in ms, for both implementations.
   *
   * @default {30}
   */
  processMs?: number;
  /**
   * Directory in which each optimized run gets a fresh SQLite file
   * (inside a new subdirectory that is removed afterwards).
   *
   * @default {the system temp directory}
   */
  dbDir?: string;
  /**
   * A PostgreSQL URL: each optimized run then works in a fresh schema of
   * that database (`sluice_bench_…`), dropped after the run, instead of a
   * SQLite file in `dbDir`.
   *
   * @default {undefined}
   */
  postgresUrl?: string;
  /**
   * Called as tasks finish, for progress displays.
   *
   * @default {undefined}
   */
  onProgress?: (progress: BenchmarkProgress) => void;
  /**
   * Stops the benchmark between tasks of an optimized run and between
   * runs (a baseline run, once started, runs to its end).
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** A progress report from {@linkcode runBenchmark}. */
export interface BenchmarkProgress {
  /** Which implementation is running. */
  impl: "baseline" | "optimized";
  /** Its producer count. */
  producers: number;
  /** Tasks finished in this run. */
  done: number;
  /** Tasks in this run. */
  total: number;
}

/** The machine a benchmark ran on. */
export interface BenchmarkMachine {
  /** CPU model (from `node:os`), or `null` without `--allow-sys`. */
  cpu: string | null;
  /** `navigator.hardwareConcurrency`. */
  cores: number;
  /** Deno version. */
  deno: string;
  /** SQLite driver in use, as the store reports it (e.g. `"sqlite-ffi"`). */
  sqlite_driver: string;
  /** SQLite library version, or `null` when unknown. */
  sqlite_version: string | null;
  /** Operating system and architecture, with the kernel release when readable. */
  os: string;
}

/** The settings of a benchmark. */
export interface BenchmarkConfig {
  /** Tasks per run. */
  tasks: number;
  /** Producer counts. */
  producers: number[];
  /** Worker threads of the optimized queue. */
  workers: number;
  /** Tasks at once per worker. */
  concurrency: number;
  /** Channel capacity. */
  capacity: number;
  /** Simulated I/O per task, ms. */
  process_ms: number;
  /** Task generator seed. */
  seed: number;
  /** Baseline consumers (they serialize on one lock). */
  baseline_consumers: number;
  /**
   * Where the optimized runs kept their tasks: SQLite files in the system
   * temp directory or in a given one, or fresh PostgreSQL schemas.
   */
  db: "temp" | "given" | "postgres";
  /** File system type of that directory (e.g. `"ext4"`, `"tmpfs"`), or `null`. */
  db_filesystem: string | null;
  /** SQLite `synchronous` of the optimized queue. */
  synchronous: "NORMAL";
}

/** One implementation at one producer count. */
export interface BenchmarkRun {
  /** Which implementation. */
  impl: "baseline" | "optimized";
  /** Concurrent producers. */
  producers: number;
  /** Tasks submitted. */
  tasks: number;
  /** Wall time from the first submission to the last completion, s. */
  seconds: number;
  /** Tasks completed per second. */
  throughput_per_s: number;
  /** Mean latency, submission to completion, ms. */
  mean_ms: number;
  /** 95th percentile latency (nearest rank, exact), ms. */
  p95_ms: number;
  /** 99th percentile latency (nearest rank, exact), ms. */
  p99_ms: number;
  /** Tasks that did not succeed ÷ tasks. */
  error_rate: number;
  /** Attempts retried. */
  retries: number;
  /** Largest queue depth seen. */
  queue_depth_max: number | null;
  /** Queue depth averaged over the run's wall time. */
  queue_depth_mean: number | null;
  /** Submissions refused because the queue was full. */
  rejections: number;
  /**
   * Busy fraction: for the optimized queue, worker busy time ÷ (wall time
   * × workers); for the baseline, whose lock admits one task at a time,
   * tasks × process time ÷ wall time.
   */
  utilization: number;
}

/** Optimized against baseline at one producer count. */
export interface BenchmarkComparison {
  /** Producer count. */
  producers: number;
  /** Optimized throughput ÷ baseline throughput. */
  throughput_ratio: number;
  /** Optimized P95 ÷ baseline P95. */
  p95_ratio: number;
}

/** Everything a benchmark measured; the schema of `benchmark.json`. */
export interface BenchmarkReport {
  /** ISO 8601 start time. */
  started_at: string;
  /** The machine. */
  machine: BenchmarkMachine;
  /** The settings. */
  config: BenchmarkConfig;
  /** Runs: baseline then optimized, per producer count. */
  runs: BenchmarkRun[];
  /** One comparison per producer count. */
  comparison: BenchmarkComparison[];
  /** How fields were measured, where it matters. */
  notes: string[];
}

/** Paths written by {@linkcode writeBenchmarkReport}. */
export interface BenchmarkFiles {
  /** `benchmark.json`. */
  json: string;
  /** `benchmark.csv`. */
  csv: string;
  /** `benchmark.svg`. */
  svg: string;
}

/** Columns of `benchmark.csv`, in order: the fields of {@linkcode BenchmarkRun}. */
export const BENCHMARK_CSV_COLUMNS: readonly (keyof BenchmarkRun)[] = [
  "impl",
  "producers",
  "tasks",
  "seconds",
  "throughput_per_s",
  "mean_ms",
  "p95_ms",
  "p99_ms",
  "error_rate",
  "retries",
  "queue_depth_max",
  "queue_depth_mean",
  "rejections",
  "utilization",
];

const BASELINE_CONSUMERS = 4;

/**
 * The `p`th percentile of an ascending array by nearest rank: the smallest
 * value with at least `p` % of the values at or below it.
 *
 * @param sorted Values in ascending order.
 * @param p Percentile, 0 to 100.
 * @returns The value, or `NaN` for an empty array.
 * @throws {RangeError} When `p` is outside 0..100.
 *
 * @example Nearest rank
 * ```ts
 * import { percentile } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const values = Array.from({ length: 100 }, (_, i) => i + 1);
 * assert.equal(percentile(values, 95), 95);
 * assert.equal(percentile(values, 100), 100);
 * assert.equal(percentile([7], 50), 7);
 * ```
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) {
    throw new RangeError(
      `Cannot compute percentile: p must be from 0 to 100, got ${p}`,
    );
  }
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot run benchmark: ${name} must be an integer >= 1, got ${
        String(value)
      }`,
    );
  }
  return value;
}

// The machine facts below are optional: each permission is asked about
// first, since touching one not granted would prompt on a terminal.

function readText(path: string): string | null {
  if (!granted({ name: "read", path })) return null;
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function cpuModel(): string | null {
  if (!granted({ name: "sys", kind: "cpus" })) return null;
  try {
    return cpus()[0]?.model.trim() || null;
  } catch {
    return null;
  }
}

function osName(): string {
  let release = "";
  if (granted({ name: "sys", kind: "osRelease" })) {
    try {
      release = ` ${Deno.osRelease()}`;
    } catch {
      // Left out when it cannot be read.
    }
  }
  return `${Deno.build.os}${release} ${Deno.build.arch}`;
}

function filesystemOf(dir: string): string | null {
  const mounts = readText("/proc/mounts");
  if (mounts === null) return null;
  let path = dir;
  try {
    path = Deno.realPathSync(dir);
  } catch {
    // Keep the path as given.
  }
  let best: { point: string; type: string } | null = null;
  for (const line of mounts.split("\n")) {
    const [, point, type] = line.split(" ");
    if (point === undefined || type === undefined) continue;
    const inside = point === "/" || path === point ||
      path.startsWith(point + "/");
    if (inside && (best === null || point.length > best.point.length)) {
      best = { point, type };
    }
  }
  return best?.type ?? null;
}

function summarize(latencies: number[]): {
  mean: number;
  p95: number;
  p99: number;
} {
  latencies.sort((a, b) => a - b);
  let sum = 0;
  for (const v of latencies) sum += v;
  return {
    mean: latencies.length > 0 ? sum / latencies.length : NaN,
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
  };
}

async function baselineRun(
  tasks: readonly BaselineTask[],
  producers: number,
  processMs: number,
  onProgress: BenchmarkOptions["onProgress"],
): Promise<BenchmarkRun> {
  const latencies: number[] = [];
  let depthMax = 0;
  let depth = 0;
  let depthSince = performance.now();
  let area = 0;
  const start = depthSince;
  const result = await runBaseline(tasks, {
    producers,
    consumers: BASELINE_CONSUMERS,
    processMs,
    onProcessed: (_task, enqueuedAt, doneAt) => {
      latencies.push(doneAt - enqueuedAt);
      onProgress?.({
        impl: "baseline",
        producers,
        done: latencies.length,
        total: tasks.length,
      });
    },
    onDepth: (next, at) => {
      area += depth * (at - depthSince);
      depth = next;
      depthSince = at;
      if (next > depthMax) depthMax = next;
    },
  });
  const end = performance.now();
  area += depth * (end - depthSince);
  const { mean, p95, p99 } = summarize(latencies);
  return {
    impl: "baseline",
    producers,
    tasks: tasks.length,
    seconds: result.seconds,
    throughput_per_s: result.processed / result.seconds,
    mean_ms: mean,
    p95_ms: p95,
    p99_ms: p99,
    error_rate: (tasks.length - result.processed) / tasks.length,
    retries: 0,
    queue_depth_max: depthMax,
    queue_depth_mean: end > start ? area / (end - start) : 0,
    rejections: 0,
    utilization: Math.min(
      1,
      (result.processed * processMs) / (result.seconds * 1000),
    ),
  };
}

interface OptimizedSettings {
  workers: number;
  concurrency: number;
  capacity: number;
  faults: FaultConfig;
  dbDir: string;
  postgresUrl: string | undefined;
  signal: AbortSignal | undefined;
  onProgress: BenchmarkOptions["onProgress"];
}

async function optimizedRun(
  tasks: readonly BaselineTask[],
  producers: number,
  settings: OptimizedSettings,
): Promise<{ run: BenchmarkRun; storeKind: string }> {
  const dir = await Deno.makeTempDir({ dir: settings.dbDir, prefix: "run-" });
  // A PostgreSQL run owns its schema: created here, dropped in the finally.
  const schema = `sluice_bench_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
  try {
    const queue = await TaskQueue.open({
      db: settings.postgresUrl ?? `${dir}/bench.db`,
      postgres: { schema },
      handlers: faultyHandlers(settings.faults),
      workers: settings.workers,
      concurrency: settings.concurrency,
      capacity: settings.capacity,
      logger: { level: "error" },
    });
    try {
      const busy = (): number =>
        queue.metrics.snapshot().utilization.workers.reduce(
          (sum, w) => sum + w.busy_ms,
          0,
        );
      const before = queue.metrics.snapshot();
      const busyBefore = busy();
      const latencies: number[] = [];
      let failed = 0;
      let rejected = 0;
      const start = performance.now();
      const producer = async (index: number): Promise<void> => {
        for (let i = index; i < tasks.length; i += producers) {
          settings.signal?.throwIfAborted();
          const task = tasks[i]!;
          const submittedAt = performance.now();
          try {
            const handle = await queue.submit(
              {
                type: "noop",
                payload: task,
                idempotencyKey: `${task.image_key}:${task.size}`,
              },
              settings.signal === undefined ? {} : { signal: settings.signal },
            );
            await handle.result;
          } catch (error) {
            settings.signal?.throwIfAborted();
            if ((error as Error).name === "QueueFullError") rejected++;
            failed++;
          }
          latencies.push(performance.now() - submittedAt);
          settings.onProgress?.({
            impl: "optimized",
            producers,
            done: latencies.length,
            total: tasks.length,
          });
        }
      };
      await Promise.all(
        Array.from({ length: producers }, (_, i) => producer(i)),
      );
      const end = performance.now();
      const after = queue.metrics.snapshot();
      const busyAfter = busy();
      const wallMs = end - start;
      // Time-weighted means compose: the run's own mean is the difference
      // of the depth areas (mean × uptime) over the run's span.
      const areaRun = after.gauges.queue_depth_mean * after.uptime_ms -
        before.gauges.queue_depth_mean * before.uptime_ms;
      const spanMs = after.uptime_ms - before.uptime_ms;
      const { mean, p95, p99 } = summarize(latencies);
      const run: BenchmarkRun = {
        impl: "optimized",
        producers,
        tasks: tasks.length,
        seconds: wallMs / 1000,
        throughput_per_s: (tasks.length - failed) / (wallMs / 1000),
        mean_ms: mean,
        p95_ms: p95,
        p99_ms: p99,
        error_rate: failed / tasks.length,
        retries: after.counters.retried - before.counters.retried,
        queue_depth_max: after.gauges.queue_depth_max,
        queue_depth_mean: spanMs > 0 ? Math.max(0, areaRun / spanMs) : 0,
        rejections: Math.max(
          rejected,
          after.counters.rejected - before.counters.rejected,
        ),
        utilization: Math.min(
          1,
          (busyAfter - busyBefore) / (wallMs * settings.workers),
        ),
      };
      return { run, storeKind: queue.store.kind };
    } finally {
      await queue.close({ deadline: 5_000 });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (settings.postgresUrl !== undefined) {
      await PostgresTaskStore.drop(settings.postgresUrl, { schema });
    }
  }
}

/**
 * Runs the baseline and the optimized queue, at each producer count, on the
 * same generated tasks (`generateTasks(tasks, { seed })`, no duplicates)
 * with the same simulated I/O. The optimized queue is durable: a fresh
 * SQLite file per run, `synchronous` NORMAL. Each producer submits its
 * share one task at a time and awaits each task's result; latency is
 * measured from submission to result.
 *
 * @param options Sizes, pool settings, seed, progress and cancellation.
 * @returns The report.
 * @throws {RangeError} When a count is not a positive integer.
 * @throws {Error} When the queue cannot open, or `signal`'s reason when aborted.
 *
 * @example A tiny benchmark
 * ```ts
 * import { runBenchmark } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const report = await runBenchmark({ tasks: 4, producers: [2], processMs: 5 });
 * assert.deepEqual(report.runs.map((r) => r.impl), ["baseline", "optimized"]);
 * assert.equal(report.runs[1]?.error_rate, 0);
 * assert.equal(report.comparison[0]?.producers, 2);
 * ```
 */
export async function runBenchmark(
  options: BenchmarkOptions = {},
): Promise<BenchmarkReport> {
  const count = positiveInteger("tasks", options.tasks ?? 1000);
  const producersList = [...(options.producers ?? [50, 100])];
  if (producersList.length === 0) {
    throw new RangeError(
      "Cannot run benchmark: producers must list at least one count",
    );
  }
  producersList.forEach((p, i) => positiveInteger(`producers[${i}]`, p));
  const workers = positiveInteger("workers", options.workers ?? 2);
  const concurrency = positiveInteger(
    "concurrency",
    options.concurrency ?? 64,
  );
  const capacity = positiveInteger("capacity", options.capacity ?? 1024);
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed)) {
    throw new RangeError(
      `Cannot run benchmark: seed must be an integer, got ${seed}`,
    );
  }
  const processMs = options.processMs ?? 30;
  if (!(processMs >= 0 && processMs <= 600_000)) {
    throw new RangeError(
      `Cannot run benchmark: processMs must be from 0 to 600000, got ${processMs}`,
    );
  }
  const { signal, onProgress, postgresUrl } = options;
  if (postgresUrl !== undefined && !isPostgresUrl(postgresUrl)) {
    throw new RangeError(
      `Cannot run benchmark: postgresUrl must start with postgres:// or postgresql://, got ${
        JSON.stringify(postgresUrl.replace(/\/\/[^@/]*@/, "//…@"))
      }`,
    );
  }
  signal?.throwIfAborted();
  const faults: FaultConfig = processMs === 30
    ? SIMULATED_IO_30MS
    : { latencyMs: processMs, jitterMs: 0 };

  let driverInfo: { driver: string; version: string | null } = {
    driver: "unknown",
    version: null,
  };
  try {
    const info = sqliteDriverInfo();
    driverInfo = { driver: info.driver, version: info.version ?? null };
  } catch {
    // Reported from the store below.
  }

  const startedAt = new Date().toISOString();
  const tasks = generateTasks(count, { seed, dupRate: 0 });
  const runs: BenchmarkRun[] = [];
  const comparison: BenchmarkComparison[] = [];
  let storeKind = `sqlite-${driverInfo.driver}`;
  // Every optimized run gets a fresh file inside this directory, so the
  // same idempotency keys never meet an earlier run's rows.
  const dbDir = await Deno.makeTempDir({
    ...(options.dbDir !== undefined && { dir: options.dbDir }),
    prefix: "sluice-bench-",
  });
  const dbFilesystem = filesystemOf(dbDir);
  try {
    for (const producers of producersList) {
      signal?.throwIfAborted();
      const baseline = await baselineRun(
        tasks,
        producers,
        processMs,
        onProgress,
      );
      runs.push(baseline);
      signal?.throwIfAborted();
      const optimized = await optimizedRun(tasks, producers, {
        workers,
        concurrency,
        capacity,
        faults,
        dbDir,
        postgresUrl,
        signal,
        onProgress,
      });
      storeKind = optimized.storeKind;
      runs.push(optimized.run);
      comparison.push({
        producers,
        throughput_ratio: optimized.run.throughput_per_s /
          baseline.throughput_per_s,
        p95_ratio: optimized.run.p95_ms / baseline.p95_ms,
      });
    }
  } finally {
    await Deno.remove(dbDir, { recursive: true }).catch(() => {});
  }
  const cpu = cpuModel();
  const notes = [
    "latency: baseline from hand-off to its producer until processing ended; optimized from submit() until the result resolved",
    "percentiles: nearest rank on the sorted latencies of every task",
    "queue depth: baseline is the length of its array, optimized the depth of its bounded channel; both time-weighted over the run",
    "utilization: optimized = worker busy time / (wall time x workers); baseline = tasks x process_ms / wall time (its lock runs one task at a time)",
  ];
  if (cpu === null) notes.push("machine.cpu needs --allow-sys");
  if (dbFilesystem === null) {
    notes.push(
      "config.db_filesystem comes from /proc/mounts, read with --allow-read=/proc/mounts",
    );
  }
  return {
    started_at: startedAt,
    machine: {
      cpu,
      cores: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      sqlite_driver: storeKind,
      sqlite_version: driverInfo.version,
      os: osName(),
    },
    config: {
      tasks: count,
      producers: producersList,
      workers,
      concurrency,
      capacity,
      process_ms: processMs,
      seed,
      baseline_consumers: BASELINE_CONSUMERS,
      db: postgresUrl !== undefined
        ? "postgres"
        : options.dbDir === undefined
        ? "temp"
        : "given",
      db_filesystem: dbFilesystem,
      synchronous: "NORMAL",
    },
    runs,
    comparison,
    notes,
  };
}

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The runs as CSV: a header of {@linkcode BENCHMARK_CSV_COLUMNS}, then one
 * row per run; `null` is an empty field.
 *
 * @param report The report.
 * @returns CSV text ending with a line break.
 *
 * @example Header and rows
 * ```ts
 * import { benchmarkToCsv, type BenchmarkReport } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const report = { runs: [] } as unknown as BenchmarkReport;
 * const csv = benchmarkToCsv(report);
 * assert.match(csv, /^impl,producers,tasks,seconds,throughput_per_s,/);
 * assert.equal(csv.trim().split("\n").length, 1);
 * ```
 */
export function benchmarkToCsv(report: BenchmarkReport): string {
  const lines = [BENCHMARK_CSV_COLUMNS.join(",")];
  for (const run of report.runs) {
    lines.push(BENCHMARK_CSV_COLUMNS.map((c) => csvField(run[c])).join(","));
  }
  return lines.join("\n") + "\n";
}

/**
 * The runs as a standalone SVG chart: throughput and P95 latency per
 * implementation and producer count, on log scales.
 *
 * @param report The report.
 * @returns SVG text.
 *
 * @example An SVG document
 * ```ts
 * import { benchmarkToSvg, type BenchmarkReport } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const report = {
 *   machine: { cpu: null, cores: 2 },
 *   config: { tasks: 10, process_ms: 30 },
 *   runs: [
 *     { impl: "baseline", producers: 2, throughput_per_s: 33, p95_ms: 300 },
 *     { impl: "optimized", producers: 2, throughput_per_s: 60, p95_ms: 31 },
 *   ],
 * } as unknown as BenchmarkReport;
 * const svg = benchmarkToSvg(report);
 * assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
 * assert.match(svg, /<\/svg>\n$/);
 * ```
 */
export function benchmarkToSvg(report: BenchmarkReport): string {
  const { machine, config } = report;
  return renderChart(report.runs, {
    title: "Sluice: baseline vs optimized queue",
    subtitle: `${config.tasks} tasks of ${config.process_ms} ms simulated I/O` +
      ` · ${machine.cores} cores${machine.cpu ? ` · ${machine.cpu}` : ""}`,
  });
}

function fixed(value: number | null, digits: number): string {
  return value === null || !Number.isFinite(value)
    ? "n/a"
    : value.toFixed(digits);
}

/**
 * The report as a plain-text table of runs followed by the ratios.
 *
 * @param report The report.
 * @returns The table, ending with a line break.
 *
 * @example The table's header
 * ```ts
 * import { formatBenchmarkTable, type BenchmarkReport } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const table = formatBenchmarkTable(
 *   { runs: [], comparison: [] } as unknown as BenchmarkReport,
 * );
 * assert.match(table, /^impl\s+producers\s+tasks\s+seconds\s+tasks\/s/);
 * ```
 */
export function formatBenchmarkTable(report: BenchmarkReport): string {
  const header = [
    "impl".padEnd(10),
    "producers".padStart(9),
    "tasks".padStart(6),
    "seconds".padStart(8),
    "tasks/s".padStart(9),
    "mean ms".padStart(9),
    "p95 ms".padStart(9),
    "p99 ms".padStart(9),
    "errors".padStart(7),
    "depth max".padStart(9),
    "util".padStart(5),
  ].join("  ");
  const lines = [header];
  for (const r of report.runs) {
    lines.push([
      r.impl.padEnd(10),
      String(r.producers).padStart(9),
      String(r.tasks).padStart(6),
      fixed(r.seconds, 2).padStart(8),
      fixed(r.throughput_per_s, 1).padStart(9),
      fixed(r.mean_ms, 1).padStart(9),
      fixed(r.p95_ms, 1).padStart(9),
      fixed(r.p99_ms, 1).padStart(9),
      `${fixed(r.error_rate * 100, 1)}%`.padStart(7),
      (r.queue_depth_max === null ? "n/a" : String(r.queue_depth_max))
        .padStart(9),
      fixed(r.utilization, 2).padStart(5),
    ].join("  "));
  }
  lines.push("");
  lines.push(
    `${"producers".padEnd(10)}  ${"throughput ratio".padStart(16)}  ${
      "p95 ratio".padStart(9)
    }`,
  );
  for (const c of report.comparison) {
    lines.push(
      `${String(c.producers).padEnd(10)}  ${
        `${fixed(c.throughput_ratio, 1)}x`.padStart(16)
      }  ${fixed(c.p95_ratio, 4).padStart(9)}`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * Writes `benchmark.json`, `benchmark.csv` and `benchmark.svg` into `dir`,
 * creating it if needed.
 *
 * @param report The report.
 * @param dir The output directory.
 * @returns The paths written.
 * @throws {Deno.errors.PermissionDenied} Without write permission on `dir`.
 *
 * @example Writing the three files
 * ```ts
 * import { type BenchmarkReport, writeBenchmarkReport } from "./benchmark.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const report = {
 *   machine: { cpu: null, cores: 2 },
 *   config: { tasks: 1, process_ms: 30 },
 *   runs: [],
 *   comparison: [],
 * } as unknown as BenchmarkReport;
 * const files = await writeBenchmarkReport(report, dir);
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(files.json)).runs, []);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeBenchmarkReport(
  report: BenchmarkReport,
  dir: string,
): Promise<BenchmarkFiles> {
  await Deno.mkdir(dir, { recursive: true });
  const files: BenchmarkFiles = {
    json: `${dir}/benchmark.json`,
    csv: `${dir}/benchmark.csv`,
    svg: `${dir}/benchmark.svg`,
  };
  await Deno.writeTextFile(files.json, JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(files.csv, benchmarkToCsv(report));
  await Deno.writeTextFile(files.svg, benchmarkToSvg(report));
  return files;
}
