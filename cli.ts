/**
 * The Sluice command line.
 *
 * ```sh
 * deno run -A cli.ts run --tasks input/sample_tasks_small.json
 * deno run -A cli.ts start --db tasks.db --workers 2
 * deno run -A cli.ts submit --db tasks.db --type noop --count 10
 * deno run -A cli.ts status --db tasks.db --json
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
 * @module
 */
import { TASK_STATUSES } from "./lib/store/_shared.ts";
import { parseArgs } from "node:util";
import { mulberry32 } from "./lib/_rng.ts";
import {
  type CliConfig,
  ConfigError,
  type ConfigKey,
  ENV_NAMES,
  FLAG_NAMES,
  readEnv,
  resolveConfig,
} from "./lib/cli/config.ts";
import { formatDuration, Progress } from "./lib/cli/progress.ts";
import {
  type BenchmarkProgress,
  formatBenchmarkTable,
  runBenchmark,
  writeBenchmarkReport,
} from "./lib/benchmark/benchmark.ts";
import { Logger } from "./lib/log.ts";
import { serveMetrics } from "./lib/metrics/server.ts";
import { QueueFullError } from "./lib/channel.ts";
import { TaskQueue } from "./lib/queue/task_queue.ts";
import type {
  CloseOptions,
  CloseReport,
  TaskInput,
  TaskQueueOptions,
} from "./lib/queue/types.ts";
import { isPostgresUrl } from "./lib/store/open_store.ts";
import { PostgresTaskStore } from "./lib/store/postgres/postgres_store.ts";
import { SqliteTaskStore } from "./lib/store/sqlite/sqlite_store.ts";
import type { StatusCounts, TaskRecord, TaskStore } from "./lib/store/store.ts";
import { VERSION } from "./mod.ts";

/** A bad command line: printed as `error: ...` and exit code 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const encoder = new TextEncoder();

function write(
  stream: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) {
    written += stream.writeSync(bytes.subarray(written));
  }
}
function out(text: string): void {
  write(Deno.stdout, text);
}
function err(text: string): void {
  write(Deno.stderr, text);
}

function isTerminal(stream: { isTerminal(): boolean }): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

function colors(): (code: string, text: string) => string {
  const on = !Deno.noColor && isTerminal(Deno.stdout);
  return (code, text) => on ? `\x1b[${code}m${text}\x1b[0m` : text;
}

// -- argument parsing -------------------------------------------------------

type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(
  args: string[],
  options: OptionSpec,
  allowPositionals = false,
): { values: Values; positionals: string[] } {
  const { values, positionals } = parseArgs({
    args,
    options: { help: { type: "boolean", short: "h" }, ...options },
    strict: true,
    allowPositionals,
  });
  return { values: values as Values, positionals };
}

function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

function integer(
  values: Values,
  name: string,
  fallback: number,
  min = 1,
): number {
  const text = str(values, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(
      `--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

function configSpec(keys: readonly ConfigKey[]): OptionSpec {
  const spec: OptionSpec = {};
  for (const key of keys) spec[FLAG_NAMES[key].slice(2)] = { type: "string" };
  return spec;
}

function config(
  values: Values,
  keys: readonly ConfigKey[],
  overrides: Partial<CliConfig> = {},
): CliConfig {
  const flags: { [K in ConfigKey]?: string } = {};
  for (const key of keys) {
    const value = str(values, FLAG_NAMES[key].slice(2));
    if (value !== undefined) flags[key] = value;
  }
  return resolveConfig(flags, readEnv(), overrides);
}

function logger(cfg: CliConfig): Logger {
  return new Logger({ level: cfg.logLevel, format: cfg.logFormat });
}

/** `cfg.db` for output: a URL's password is never printed. */
function describeDb(cfg: CliConfig): string {
  if (!isPostgresUrl(cfg.db)) return cfg.db;
  return `${
    cfg.db.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:…@")
  } (schema ${cfg.pgSchema})`;
}

/** A queue opened for a command, and the PostgreSQL store it may run on. */
interface CliQueue {
  /** The queue. */
  queue: TaskQueue;
  /**
   * Closes the queue (unless already closed), then the store the CLI
   * opened for it: the queue does not own a store it was handed.
   */
  close(options?: CloseOptions): Promise<CloseReport | undefined>;
}

/**
 * Opens a queue on `cfg.db`: TaskQueue opens a SQLite path itself; a
 * PostgreSQL URL is opened here, so the queue lives in `cfg.pgSchema`.
 */
async function openQueue(
  cfg: CliConfig,
  options: Omit<TaskQueueOptions, "db" | "driver" | "synchronous">,
): Promise<CliQueue> {
  if (!isPostgresUrl(cfg.db)) {
    const queue = await TaskQueue.open({
      ...options,
      db: cfg.db,
      driver: cfg.sqliteDriver,
      synchronous: cfg.synchronous,
    });
    return {
      queue,
      close: async (o) => queue.closed ? undefined : await queue.close(o),
    };
  }
  const store = await PostgresTaskStore.open(cfg.db, {
    schema: cfg.pgSchema,
  });
  let queue: TaskQueue;
  try {
    queue = await TaskQueue.open({ ...options, db: store });
  } catch (error) {
    await store.close();
    throw error;
  }
  return {
    queue,
    async close(o): Promise<CloseReport | undefined> {
      try {
        return queue.closed ? undefined : await queue.close(o);
      } finally {
        await store.close();
      }
    },
  };
}

const QUEUE_KEYS: readonly ConfigKey[] = [
  "db",
  "workers",
  "concurrency",
  "capacity",
  "overflow",
  "maxAttempts",
  "taskTimeoutMs",
  "logLevel",
  "logFormat",
  "objects",
  "sqliteDriver",
  "synchronous",
  "pgSchema",
];

const CONFIG_HELP = `Configuration (flag, environment variable, default):
  --db PATH|URL          SLUICE_DB               tasks.db (SQLite file, or a
                                                 postgres:// URL for PostgreSQL)
  --pg-schema NAME       SLUICE_PG_SCHEMA        sluice (PostgreSQL schema of
                                                 the queue)
  --workers N            SLUICE_WORKERS          CPU cores
  --concurrency C        SLUICE_CONCURRENCY      1 (tasks at once per worker)
  --capacity N           SLUICE_CAPACITY         1024 (channel size)
  --overflow MODE        SLUICE_OVERFLOW         block (or reject)
  --max-attempts N       SLUICE_MAX_ATTEMPTS     3
  --task-timeout-ms MS   SLUICE_TASK_TIMEOUT_MS  30000 (0: none)
  --log-level LEVEL      SLUICE_LOG_LEVEL        info (debug|info|warn|error|silent)
  --log-format FORMAT    SLUICE_LOG_FORMAT       json (or pretty)
  --objects DIR          SLUICE_OBJECTS          objects (object store root)
  --sqlite-driver NAME   SLUICE_SQLITE_DRIVER    auto (ffi|builtin|auto)
  --synchronous MODE     SLUICE_SYNCHRONOUS      NORMAL (FULL|OFF)
`;

const USAGE = `Sluice ${VERSION}: a Deno-native task queue

Usage:
  cli.ts <command> [options]        (each command has --help)
  cli.ts --benchmark [options]
  cli.ts --help | --version

Commands:
  run       Process a task file and print a summary
  submit    Enqueue tasks into a database another process works on
  start     Run a long-lived worker process on a database
  status    Counts, depth, oldest age and throughput of a database
  monitor   Refresh status in place, or export snapshots as JSON/CSV
  dlq       List, show and requeue dead-lettered tasks
  export    Dump every task as JSON or CSV

Benchmark (baseline vs optimized queue, 30 ms simulated I/O):
  --benchmark          Run it, print a table, write benchmark.{json,csv,svg}
  --tasks N            Tasks per run (default 1000: about 65 s in all with
                       the default producers, almost all of it baseline)
  --producers LIST     Comma-separated producer counts (default 50,100)
  --workers W          Optimized queue workers (default 2)
  --concurrency C      Tasks at once per worker (default 64)
  --out DIR            Output directory (default results)
  --db DIR|URL         Directory for the SQLite files (default: system temp),
                       or a postgres:// URL: each optimized run then uses a
                       fresh schema of that database, dropped afterwards
                       (SLUICE_DB is used when it is a postgres:// URL)
                       (run with -A to record the CPU model: Deno reads /proc
                       only with --allow-all)

Exit codes: 0 ok, 1 runtime failure, 2 usage error.
Flags win over SLUICE_* environment variables, which win over defaults.
Options:
  -h, --help           Show this help
  --version            Show the version
`;

// -- run --------------------------------------------------------------------

const RUN_USAGE = `Usage: cli.ts run --tasks FILE [options]

Processes a task file, waits for every task to finish and prints a summary
(succeeded, dead, deduplicated, rejected, seconds, tasks/s, p95). The file is
a JSON array of { "image_key", "size" } objects (type "image.variant") or of
{ "type", "payload", "idempotencyKey"?, "maxAttempts"? } objects.

Options:
  --tasks FILE           The task file (required)
  --json                 Print the summary as JSON
  -h, --help             Show this help

${CONFIG_HELP}`;

function toTaskInput(item: unknown, index: number): TaskInput {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new Error(`Cannot read task ${index}: expected an object`);
  }
  const record = item as Record<string, unknown>;
  if (typeof record["type"] === "string") {
    const task: TaskInput = { type: record["type"] };
    if ("payload" in record) task.payload = record["payload"];
    if (typeof record["idempotencyKey"] === "string") {
      task.idempotencyKey = record["idempotencyKey"];
    }
    if (typeof record["maxAttempts"] === "number") {
      task.maxAttempts = record["maxAttempts"];
    }
    return task;
  }
  if (
    typeof record["image_key"] === "string" &&
    typeof record["size"] === "string"
  ) {
    return { type: "image.variant", payload: record };
  }
  throw new Error(
    `Cannot read task ${index}: expected { type, payload } or { image_key, size }`,
  );
}

async function readTaskFile(path: string): Promise<TaskInput[]> {
  const text = await Deno.readTextFile(path);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `Cannot read task file ${path}: ${(error as Error).message}`,
    );
  }
  if (!Array.isArray(data)) {
    throw new Error(`Cannot read task file ${path}: expected a JSON array`);
  }
  return data.map(toTaskInput);
}

async function runCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    tasks: { type: "string" },
    json: { type: "boolean" },
    ...configSpec(QUEUE_KEYS),
  });
  if (values.help) {
    out(RUN_USAGE);
    return 0;
  }
  const file = str(values, "tasks");
  if (file === undefined) throw new UsageError("run needs --tasks FILE");
  const cfg = config(values, QUEUE_KEYS, { logLevel: "warn" });
  const tasks = await readTaskFile(file);
  const opened = await openQueue(cfg, {
    workers: cfg.workers,
    concurrency: cfg.concurrency,
    capacity: cfg.capacity,
    overflow: cfg.overflow,
    retry: { maxAttempts: cfg.maxAttempts },
    timeoutMs: cfg.taskTimeoutMs,
    objectsRoot: cfg.objects,
    logger: logger(cfg),
  });
  const queue = opened.queue;
  const progress = new Progress({ label: "run", total: tasks.length });
  let succeeded = 0;
  let dead = 0;
  let deduplicated = 0;
  let rejected = 0;
  let finished = 0;
  const latencies: number[] = [];
  const start = performance.now();
  try {
    await Promise.all(tasks.map(async (task) => {
      const submittedAt = performance.now();
      try {
        const handle = await queue.submit(task);
        if (handle.deduplicated) deduplicated++;
        await handle.result;
        succeeded++;
      } catch (error) {
        if (error instanceof QueueFullError) rejected++;
        else dead++;
      }
      latencies.push(performance.now() - submittedAt);
      progress.update(++finished);
    }));
  } finally {
    progress.clear();
    await opened.close();
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const p95 = latencies.length === 0
    ? 0
    : latencies[Math.max(0, Math.ceil(latencies.length * 0.95) - 1)]!;
  const summary = {
    tasks: tasks.length,
    succeeded,
    dead,
    deduplicated,
    rejected,
    seconds: Number(seconds.toFixed(3)),
    tasks_per_s: Number((tasks.length / seconds).toFixed(1)),
    p95_ms: Number(p95.toFixed(1)),
  };
  if (values.json) {
    out(JSON.stringify(summary) + "\n");
  } else {
    out(
      `${summary.tasks} tasks in ${summary.seconds} s (${summary.tasks_per_s} tasks/s, p95 ${summary.p95_ms} ms)\n` +
        `succeeded ${succeeded}  dead ${dead}  deduplicated ${deduplicated}  rejected ${rejected}\n`,
    );
  }
  return 0;
}

// -- submit -----------------------------------------------------------------

const SUBMIT_USAGE = `Usage:
  cli.ts submit --db PATH|URL --file FILE [options]
  cli.ts submit --db PATH|URL --type T [--payload JSON] [--count N] [options]
  cli.ts submit --db PATH|URL --random --count N [--seed S] [options]

Enqueues tasks into a database that a "start" process works on; this process
runs no tasks. Prints one task id per line, or with --json the counts and ids.

Options:
  --file FILE              Task file (as for "run")
  --type T                 Task type (a handler name: noop, compute, sleep, fail,
                           http.simulated, image.variant)
  --payload JSON           Payload for --type (default null)
  --count N                Copies with --type, tasks with --random (default 1)
  --random                 Random noop/compute/sleep tasks
  --seed S                 Seed for --random (default 1)
  --max-retries N          Retries after the first attempt (default: from
                           SLUICE_MAX_ATTEMPTS, 3 attempts)
  --idempotency-key K      Idempotency key (with --type and --count 1)
  --json                   Print {"submitted","deduplicated","ids"}
  -h, --help               Show this help

Configuration: --db (a SQLite path or a postgres:// URL), --pg-schema,
--sqlite-driver, --synchronous, --log-level, --log-format (and their SLUICE_*
variables), as in "cli.ts run --help".
`;

function randomTasks(count: number, seed: number): TaskInput[] {
  const random = mulberry32(seed);
  const tasks: TaskInput[] = [];
  for (let i = 0; i < count; i++) {
    const pick = random();
    if (pick < 0.4) {
      tasks.push({ type: "noop", payload: { n: i } });
    } else if (pick < 0.7) {
      tasks.push({
        type: "compute",
        payload: {
          operation: "double",
          value: Math.floor(random() * 1_000_000),
        },
      });
    } else {
      tasks.push({
        type: "sleep",
        payload: { duration_ms: 1 + Math.floor(random() * 20) },
      });
    }
  }
  return tasks;
}

async function submitCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = [
    "db",
    "sqliteDriver",
    "synchronous",
    "logLevel",
    "logFormat",
    "maxAttempts",
    "pgSchema",
  ];
  const { values } = parse(args, {
    file: { type: "string" },
    type: { type: "string" },
    payload: { type: "string" },
    random: { type: "boolean" },
    count: { type: "string" },
    seed: { type: "string" },
    "max-retries": { type: "string" },
    "idempotency-key": { type: "string" },
    json: { type: "boolean" },
    ...configSpec(keys),
  });
  if (values.help) {
    out(SUBMIT_USAGE);
    return 0;
  }
  const file = str(values, "file");
  const type = str(values, "type");
  const random = values.random === true;
  const sources = [file !== undefined, type !== undefined, random]
    .filter(Boolean).length;
  if (sources !== 1) {
    throw new UsageError(
      "submit needs exactly one of --file, --type or --random",
    );
  }
  if (str(values, "payload") !== undefined && type === undefined) {
    throw new UsageError("--payload needs --type");
  }
  const count = integer(values, "count", 1);
  const key = str(values, "idempotency-key");
  if (key !== undefined && (type === undefined || count !== 1)) {
    throw new UsageError("--idempotency-key needs --type and --count 1");
  }
  if (key === "") throw new UsageError("--idempotency-key must not be empty");
  const cfg = config(values, keys, { logLevel: "warn" });
  const retries = str(values, "max-retries");
  const maxAttempts = retries === undefined
    ? cfg.maxAttempts
    : integer(values, "max-retries", 0, 0) + 1;

  let tasks: TaskInput[];
  if (file !== undefined) {
    tasks = await readTaskFile(file);
  } else if (type !== undefined) {
    let payload: unknown = null;
    const text = str(values, "payload");
    if (text !== undefined) {
      try {
        payload = JSON.parse(text);
      } catch (error) {
        throw new UsageError(
          `--payload must be JSON: ${(error as Error).message}`,
        );
      }
    }
    tasks = Array.from({ length: count }, () => ({
      type,
      payload,
      ...(key !== undefined && { idempotencyKey: key }),
    }));
  } else {
    tasks = randomTasks(count, integer(values, "seed", 1, 0));
  }
  for (const task of tasks) task.maxAttempts ??= maxAttempts;

  const opened = await openQueue(cfg, {
    consume: false,
    // This process never reads the handles' results, and polling for them
    // would read every unfinished task in turn, competing with the inserts.
    // The longest interval a timer takes turns it off.
    pollIntervalMs: 2 ** 31 - 1,
    logger: logger(cfg),
  });
  const queue = opened.queue;
  const progress = new Progress({ label: "submit", total: tasks.length });
  const ids: string[] = [];
  let deduplicated = 0;
  try {
    if (file !== undefined) {
      // A task file is checked whole, then committed in one transaction:
      // a bad task at any index leaves nothing behind, and is named by its
      // index in the file.
      for (const handle of await queue.submitMany(tasks, { atomic: true })) {
        ids.push(handle.id);
        if (handle.deduplicated) deduplicated++;
      }
    } else {
      // Generated tasks go in slices, so each group commit holds many
      // inserts while the memory held by pending submissions stays bounded.
      const slice = 512;
      for (let i = 0; i < tasks.length; i += slice) {
        const handles = await queue.submitMany(tasks.slice(i, i + slice));
        for (const handle of handles) {
          ids.push(handle.id);
          if (handle.deduplicated) deduplicated++;
        }
        progress.update(ids.length);
      }
    }
  } finally {
    progress.clear();
    await opened.close({ deadline: 0 });
  }
  if (values.json) {
    out(
      JSON.stringify({
        submitted: ids.length - deduplicated,
        deduplicated,
        ids,
      }) + "\n",
    );
  } else {
    out(ids.map((id) => id + "\n").join(""));
  }
  return 0;
}

// -- start ------------------------------------------------------------------

const START_USAGE = `Usage: cli.ts start --db PATH|URL [options]

Runs a worker process on a database until SIGINT or SIGTERM. The first signal
stops taking work and lets running tasks finish within --deadline; a second
signal exits at once (exit code 1). Tasks left unfinished stay in the
database and run on the next start.

With --db postgres://..., any number of start processes, on any hosts, share
the queue in --pg-schema: claims never hand one task to two of them, new work
wakes them through LISTEN/NOTIFY, and the tasks of a process that dies are
handed out again once their lease (--lease-ms) runs out.

Options:
  --metrics-port P       Serve Prometheus /metrics and /healthz on 127.0.0.1:P
                         (SLUICE_METRICS_PORT; 0 picks a free port)
  --deadline MS          Graceful shutdown deadline (default 30000)
  --poll-interval-ms MS  How often to look for new work, expired leases and
                         a lost database connection (default 100)
  --lease-ms MS          How long a claimed task stays this process's without
                         a heartbeat; a heartbeat renews every held task each
                         lease-ms / 4, however long tasks run (default 30000)
  --prefetch N           Tasks claimed ahead of free slots (default: workers x
                         concurrency)
  --metrics-file PATH    Write the final metrics snapshot there on shutdown
                         (CSV when PATH ends in .csv, JSON otherwise)
  --handlers URL         Handler module (a file path or URL) whose named
                         exports handle task types (default: the built-ins)
  -h, --help             Show this help

${CONFIG_HELP}`;

/** A `--handlers` value as a module URL: a URL as given, a path from the cwd. */
function handlerUrl(text: string): URL {
  if (text === "") throw new UsageError("--handlers must not be empty");
  if (/^[a-z][a-z0-9+.-]*:/i.test(text) && !/^[a-z]:[\\/]/i.test(text)) {
    try {
      return new URL(text);
    } catch {
      throw new UsageError(
        `--handlers must be a path or URL, got ${JSON.stringify(text)}`,
      );
    }
  }
  const cwd = Deno.cwd().replaceAll("\\", "/");
  return new URL(
    text.replaceAll("\\", "/"),
    `file://${cwd.startsWith("/") ? "" : "/"}${cwd}/`,
  );
}

function addSignals(handler: (signal: Deno.Signal) => void): () => void {
  const added: Array<[Deno.Signal, () => void]> = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = (): void => handler(signal);
    try {
      Deno.addSignalListener(signal, listener);
      added.push([signal, listener]);
    } catch {
      // SIGTERM is not available on every platform.
    }
  }
  return () => {
    for (const [signal, listener] of added) {
      Deno.removeSignalListener(signal, listener);
    }
  };
}

async function startCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = [...QUEUE_KEYS, "metricsPort"];
  const { values } = parse(args, {
    deadline: { type: "string" },
    "poll-interval-ms": { type: "string" },
    "lease-ms": { type: "string" },
    prefetch: { type: "string" },
    handlers: { type: "string" },
    "metrics-file": { type: "string" },
    ...configSpec(keys),
  });
  if (values.help) {
    out(START_USAGE);
    return 0;
  }
  const cfg = config(values, keys);
  const deadline = integer(values, "deadline", 30_000, 0);
  const pollIntervalMs = integer(values, "poll-interval-ms", 100);
  const leaseText = str(values, "lease-ms");
  const prefetchText = str(values, "prefetch");
  const handlersText = str(values, "handlers");
  const metricsFile = str(values, "metrics-file");
  const extra: Partial<TaskQueueOptions> = {
    ...(metricsFile !== undefined && { metricsFile }),
    ...(leaseText !== undefined &&
      { leaseMs: integer(values, "lease-ms", 0) }),
    ...(prefetchText !== undefined &&
      { prefetch: integer(values, "prefetch", 0, 0) }),
    ...(handlersText !== undefined &&
      { handlers: handlerUrl(handlersText) }),
  };
  const log = logger(cfg);

  let signals = 0;
  let stop!: (signal: Deno.Signal) => void;
  const stopped = new Promise<Deno.Signal>((resolve) => (stop = resolve));
  const removeSignals = addSignals((signal) => {
    if (++signals === 1) {
      stop(signal);
      return;
    }
    log.warn("worker_killed", { signal });
    removeSignals();
    Deno.exit(1);
  });
  try {
    const opened = await openQueue(cfg, {
      workers: cfg.workers,
      concurrency: cfg.concurrency,
      capacity: cfg.capacity,
      overflow: cfg.overflow,
      retry: { maxAttempts: cfg.maxAttempts },
      timeoutMs: cfg.taskTimeoutMs,
      objectsRoot: cfg.objects,
      pollIntervalMs,
      logger: log,
      ...extra,
    });
    const queue = opened.queue;
    let server: ReturnType<typeof serveMetrics> | undefined;
    try {
      if (cfg.metricsPort !== null) {
        server = serveMetrics({
          port: cfg.metricsPort,
          metrics: () => queue.metrics.toPrometheus(),
          healthy: () => !queue.draining && !queue.closed,
        });
      }
      log.info("worker_started", {
        pid: Deno.pid,
        db: describeDb(cfg),
        store: queue.store.kind,
        workers: cfg.workers,
        concurrency: cfg.concurrency,
        ...(server !== undefined && { metrics_port: server.port }),
      });
      const signal = await stopped;
      log.info("worker_stopping", { signal, deadline_ms: deadline });
      const report = await opened.close({ deadline });
      log.info("worker_stopped", {
        drained: report?.drained ?? true,
        unfinished: report?.unfinished ?? 0,
        // The final metrics, also written to --metrics-file when given.
        counters: queue.metrics.snapshot().counters,
      });
    } finally {
      await opened.close({ deadline: 0 });
      await server?.shutdown();
    }
  } finally {
    removeSignals();
  }
  return 0;
}

// -- status, monitor --------------------------------------------------------

const STATUS_USAGE = `Usage: cli.ts status --db PATH|URL [--json]

Reads counts by status, depth (queued plus failed tasks due for a retry), the
age of the oldest due task, the dead-letter count and recent throughput
(tasks succeeded in the last 60 s ÷ 60). A SQLite database is opened
read-only, so a running worker is not disturbed; PostgreSQL is read on one
connection.

Options:
  --db PATH|URL          SQLite file or postgres:// URL (SLUICE_DB, default
                         tasks.db)
  --pg-schema NAME       PostgreSQL schema (SLUICE_PG_SCHEMA, default sluice)
  --sqlite-driver NAME   ffi, builtin or auto (SLUICE_SQLITE_DRIVER)
  --json                 Print JSON
  -h, --help             Show this help
`;

const MONITOR_USAGE =
  `Usage: cli.ts monitor --db PATH|URL [--once] [--interval MS] [--export json|csv]

Shows status every --interval ms (default 1000), redrawn in place on a
terminal, until interrupted. --once shows one frame. --export writes one
JSON line or CSV row (after a header) per refresh instead, for scripts.

Options:
  --db PATH|URL          SQLite file or postgres:// URL (SLUICE_DB, default
                         tasks.db)
  --pg-schema NAME       PostgreSQL schema (SLUICE_PG_SCHEMA, default sluice)
  --sqlite-driver NAME   ffi, builtin or auto (SLUICE_SQLITE_DRIVER)
  --once                 One frame, then exit
  --interval MS          Refresh interval (default 1000)
  --export FORMAT        json or csv
  -h, --help             Show this help
`;

interface StatusSnapshot {
  time: string;
  db: string;
  counts: StatusCounts;
  total: number;
  depth: number;
  oldest_queued_age_ms: number | null;
  dead_letters: number;
  recent_succeeded: number;
  window_s: number;
  throughput_per_s: number;
}

/**
 * Opens `cfg.db` to inspect it: a SQLite file read-only (it must exist), or
 * the PostgreSQL schema on one connection with no LISTEN.
 */
/**
 * Opens the store for reading only: a missing database or schema is an
 * error that says there is no Sluice queue there; nothing is created or
 * migrated.
 */
async function openInspect(
  cfg: CliConfig,
): Promise<TaskStore & AsyncDisposable> {
  if (isPostgresUrl(cfg.db)) {
    return await PostgresTaskStore.open(cfg.db, {
      schema: cfg.pgSchema,
      max: 1,
      notify: false,
      readonly: true,
    });
  }
  return openReadOnly(cfg);
}

function openReadOnly(cfg: CliConfig): SqliteTaskStore {
  return SqliteTaskStore.open(cfg.db, {
    readonly: true,
    driver: cfg.sqliteDriver,
  });
}

async function readStatus(
  store: TaskStore,
  db: string,
): Promise<StatusSnapshot> {
  const now = Date.now();
  const status = await store.status(now, 60_000);
  // The store counts failed tasks but not which are due; retries wait in
  // `failed` until their run_at, and only due ones add to the depth.
  let failedDue = 0;
  if (status.counts.failed > 0) {
    for (const task of await store.list({ status: "failed" })) {
      if (task.runAt <= now) failedDue++;
    }
  }
  const total = TASK_STATUSES.reduce((sum, s) => sum + status.counts[s], 0);
  const windowS = status.windowMs / 1000;
  return {
    time: new Date(now).toISOString(),
    db,
    counts: status.counts,
    total,
    depth: status.counts.queued + failedDue,
    oldest_queued_age_ms: status.oldestQueuedAgeMs,
    dead_letters: status.counts.dead,
    recent_succeeded: status.recentSucceeded,
    window_s: windowS,
    throughput_per_s: status.recentSucceeded / windowS,
  };
}

function formatStatus(s: StatusSnapshot): string {
  const c = colors();
  const lines = [
    `${c("1", "Sluice status")}  ${s.db}  ${s.time}`,
    "",
    ...TASK_STATUSES.map((name) => {
      const n = String(s.counts[name]).padStart(10);
      const colored = name === "dead" && s.counts[name] > 0
        ? c("31", n)
        : name === "running" && s.counts[name] > 0
        ? c("32", n)
        : n;
      return `  ${name.padEnd(12)}${colored}`;
    }),
    `  ${"total".padEnd(12)}${String(s.total).padStart(10)}`,
    "",
    `  depth        ${String(s.depth).padStart(10)}  (queued + failed due)`,
    `  oldest queued ${
      (s.oldest_queued_age_ms === null
        ? "-"
        : formatDuration(s.oldest_queued_age_ms / 1000)).padStart(9)
    }`,
    `  dead letters ${String(s.dead_letters).padStart(10)}`,
    `  throughput   ${
      s.throughput_per_s.toFixed(2).padStart(10)
    } tasks/s (last ${s.window_s} s)`,
  ];
  return lines.join("\n") + "\n";
}

const CSV_COLUMNS: ReadonlyArray<
  readonly [string, (s: StatusSnapshot) => unknown]
> = [
  ["time", (s) => s.time],
  ...TASK_STATUSES.map((name) =>
    [name, (s: StatusSnapshot) => s.counts[name]] as const
  ),
  ["total", (s) => s.total],
  ["depth", (s) => s.depth],
  ["oldest_queued_age_ms", (s) => s.oldest_queued_age_ms ?? ""],
  ["dead_letters", (s) => s.dead_letters],
  ["recent_succeeded", (s) => s.recent_succeeded],
  ["throughput_per_s", (s) => s.throughput_per_s],
];

async function statusCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = ["db", "sqliteDriver", "pgSchema"];
  const { values } = parse(args, {
    json: { type: "boolean" },
    ...configSpec(keys),
  });
  if (values.help) {
    out(STATUS_USAGE);
    return 0;
  }
  const cfg = config(values, keys);
  await using store = await openInspect(cfg);
  const snapshot = await readStatus(store, describeDb(cfg));
  out(values.json ? JSON.stringify(snapshot) + "\n" : formatStatus(snapshot));
  return 0;
}

async function monitorCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = ["db", "sqliteDriver", "pgSchema"];
  const { values } = parse(args, {
    once: { type: "boolean" },
    interval: { type: "string" },
    export: { type: "string" },
    ...configSpec(keys),
  });
  if (values.help) {
    out(MONITOR_USAGE);
    return 0;
  }
  const format = str(values, "export");
  if (format !== undefined && format !== "json" && format !== "csv") {
    throw new UsageError(
      `--export must be json or csv, got ${JSON.stringify(format)}`,
    );
  }
  const interval = integer(values, "interval", 1000, 10);
  const cfg = config(values, keys);
  await using store = await openInspect(cfg);
  const tty = isTerminal(Deno.stdout);
  const abort = new AbortController();
  const removeSignals = values.once ? () => {} : addSignals(() => {
    abort.abort();
  });
  try {
    let first = true;
    while (!abort.signal.aborted) {
      const snapshot = await readStatus(store, describeDb(cfg));
      if (format === "json") {
        out(JSON.stringify(snapshot) + "\n");
      } else if (format === "csv") {
        if (first) out(CSV_COLUMNS.map(([name]) => name).join(",") + "\n");
        out(
          CSV_COLUMNS.map(([, read]) => String(read(snapshot))).join(",") +
            "\n",
        );
      } else if (tty && !values.once) {
        out("\x1b[H\x1b[2J" + formatStatus(snapshot));
      } else {
        out((first ? "" : "\n") + formatStatus(snapshot));
      }
      first = false;
      if (values.once) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, interval);
        function done(): void {
          clearTimeout(timer);
          abort.signal.removeEventListener("abort", done);
          resolve();
        }
        abort.signal.addEventListener("abort", done, { once: true });
      });
    }
  } finally {
    removeSignals();
  }
  return 0;
}

// -- dlq --------------------------------------------------------------------

const DLQ_USAGE = `Usage:
  cli.ts dlq list [--limit N] [--db PATH|URL] [--json]
  cli.ts dlq show ID [--db PATH|URL] [--json]
  cli.ts dlq requeue (ID... | --all) [--db PATH|URL] [--json]

Dead-lettered tasks: failed permanently or out of attempts. "requeue" moves
them back to queued with fresh attempts; a running "start" picks them up.

Options:
  --limit N              At most N tasks for list (default 100)
  --all                  Requeue every dead task
  --db PATH|URL          SQLite file or postgres:// URL (SLUICE_DB, default
                         tasks.db)
  --pg-schema NAME       PostgreSQL schema (SLUICE_PG_SCHEMA, default sluice)
  --sqlite-driver NAME   ffi, builtin or auto (SLUICE_SQLITE_DRIVER)
  --json                 Print JSON
  -h, --help             Show this help
`;

function taskJson(task: TaskRecord): Record<string, unknown> {
  return {
    id: task.id,
    type: task.type,
    status: task.status,
    attempts: task.attempts,
    max_attempts: task.maxAttempts,
    idempotency_key: task.idempotencyKey,
    error_class: task.errorClass,
    last_error: task.lastError,
    created_at: new Date(task.createdAt).toISOString(),
    updated_at: new Date(task.updatedAt).toISOString(),
  };
}

async function dlqCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = ["db", "sqliteDriver", "pgSchema"];
  const { values, positionals } = parse(args, {
    limit: { type: "string" },
    all: { type: "boolean" },
    json: { type: "boolean" },
    ...configSpec(keys),
  }, true);
  if (values.help) {
    out(DLQ_USAGE);
    return 0;
  }
  const [action, ...ids] = positionals;
  if (action === undefined) {
    throw new UsageError("dlq needs an action: list, show or requeue");
  }
  const cfg = config(values, keys);
  if (action === "list") {
    if (ids.length > 0) throw new UsageError("dlq list takes no ids");
    const limit = integer(values, "limit", 100);
    await using store = await openInspect(cfg);
    const dead = await store.list({ status: "dead", limit });
    if (values.json) {
      out(JSON.stringify(dead.map(taskJson)) + "\n");
    } else if (dead.length === 0) {
      out("no dead tasks\n");
    } else {
      for (const task of dead) {
        out(
          `${task.id}  ${task.type}  attempts=${task.attempts}  ${
            task.errorClass ?? "-"
          }  ${task.lastError ?? ""}\n`,
        );
      }
    }
    return 0;
  }
  if (action === "show") {
    if (ids.length !== 1) throw new UsageError("dlq show needs one task id");
    await using store = await openInspect(cfg);
    const task = await store.get(ids[0]!);
    if (task === undefined || task.status !== "dead") {
      err(`error: Cannot show task ${ids[0]}: no dead task with this id\n`);
      return 1;
    }
    const detail = { ...taskJson(task), payload: task.payload };
    if (values.json) {
      out(JSON.stringify(detail) + "\n");
    } else {
      for (const [name, value] of Object.entries(detail)) {
        out(
          `${name.padEnd(16)}${
            typeof value === "string" ? value : JSON.stringify(value)
          }\n`,
        );
      }
    }
    return 0;
  }
  if (action === "requeue") {
    if ((ids.length > 0) === (values.all === true)) {
      throw new UsageError("dlq requeue needs task ids or --all (not both)");
    }
    let store: TaskStore & AsyncDisposable;
    if (isPostgresUrl(cfg.db)) {
      // Checked read-only first, so a missing schema is not created.
      await (await openInspect(cfg)).close();
      store = await PostgresTaskStore.open(cfg.db, {
        schema: cfg.pgSchema,
        max: 1,
      });
    } else {
      openReadOnly(cfg).close();
      store = SqliteTaskStore.open(cfg.db, { driver: cfg.sqliteDriver });
    }
    await using _store = store;
    const count = await store.requeue(values.all ? "all" : ids, Date.now());
    out(
      values.json
        ? JSON.stringify({ requeued: count }) + "\n"
        : `requeued ${count}\n`,
    );
    return 0;
  }
  throw new UsageError(
    `unknown dlq action ${
      JSON.stringify(action)
    }: expected list, show or requeue`,
  );
}

// -- export -----------------------------------------------------------------

const EXPORT_USAGE = `Usage: cli.ts export --db PATH|URL --format json|csv

Writes every task (id, type, status, attempts, error_class, last_error,
created_at, updated_at) to stdout, oldest first: a JSON array, or CSV with a
header. Times are ISO 8601.

Options:
  --format FORMAT        json or csv (required)
  --db PATH|URL          SQLite file or postgres:// URL (SLUICE_DB, default
                         tasks.db)
  --pg-schema NAME       PostgreSQL schema (SLUICE_PG_SCHEMA, default sluice)
  --sqlite-driver NAME   ffi, builtin or auto (SLUICE_SQLITE_DRIVER)
  -h, --help             Show this help
`;

const EXPORT_COLUMNS = [
  "id",
  "type",
  "status",
  "attempts",
  "error_class",
  "last_error",
  "created_at",
  "updated_at",
] as const;

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function exportCommand(args: string[]): Promise<number> {
  const keys: ConfigKey[] = ["db", "sqliteDriver", "pgSchema"];
  const { values } = parse(args, {
    format: { type: "string" },
    ...configSpec(keys),
  });
  if (values.help) {
    out(EXPORT_USAGE);
    return 0;
  }
  const format = str(values, "format");
  if (format !== "json" && format !== "csv") {
    throw new UsageError(
      `export needs --format json or csv${
        format === undefined ? "" : `, got ${JSON.stringify(format)}`
      }`,
    );
  }
  const cfg = config(values, keys);
  await using store = await openInspect(cfg);
  if (format === "csv") out(EXPORT_COLUMNS.join(",") + "\n");
  else out("[");
  const page = 1000;
  let first = true;
  for (let offset = 0;; offset += page) {
    const tasks = await store.list({ limit: page, offset });
    let text = "";
    for (const task of tasks) {
      const row = taskJson(task);
      if (format === "csv") {
        text += EXPORT_COLUMNS.map((c) => csvField(row[c])).join(",") + "\n";
      } else {
        const picked: Record<string, unknown> = {};
        for (const c of EXPORT_COLUMNS) picked[c] = row[c];
        text += (first ? "\n" : ",\n") + JSON.stringify(picked);
        first = false;
      }
    }
    out(text);
    if (tasks.length < page) break;
  }
  if (format === "json") out(first ? "]\n" : "\n]\n");
  return 0;
}

// -- benchmark --------------------------------------------------------------

async function benchmarkCommand(values: Values): Promise<number> {
  const tasks = integer(values, "tasks", 1000);
  const producersText = str(values, "producers") ?? "50,100";
  const producers = producersText.split(",").map((part) => {
    const text = part.trim();
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      throw new UsageError(
        `--producers must be a comma-separated list of integers >= 1, got ${
          JSON.stringify(producersText)
        }`,
      );
    }
    return Number(text);
  });
  const workers = integer(values, "workers", 2);
  const concurrency = integer(values, "concurrency", 64);
  const outDir = str(values, "out") ?? "results";
  // SLUICE_DB names a database file, not a directory: only a PostgreSQL URL
  // in it is taken for the benchmark.
  const envDb = readEnv([ENV_NAMES.db])[ENV_NAMES.db];
  const db = str(values, "db") ??
    (envDb !== undefined && isPostgresUrl(envDb) ? envDb : undefined);
  const dbDir = db !== undefined && !isPostgresUrl(db) ? db : undefined;
  const postgresUrl = db !== undefined && isPostgresUrl(db) ? db : undefined;
  const progress = new Progress();
  let current = "";
  const report = await runBenchmark({
    tasks,
    producers,
    workers,
    concurrency,
    ...(dbDir !== undefined && { dbDir }),
    ...(postgresUrl !== undefined && { postgresUrl }),
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
}

// -- entry ------------------------------------------------------------------

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  run: runCommand,
  submit: submitCommand,
  start: startCommand,
  status: statusCommand,
  monitor: monitorCommand,
  dlq: dlqCommand,
  export: exportCommand,
};

async function dispatch(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first !== undefined && !first.startsWith("-")) {
    const command = COMMANDS[first];
    if (command === undefined) {
      throw new UsageError(`unknown command ${JSON.stringify(first)}`);
    }
    return await command(rest);
  }
  const { values } = parse(args, {
    benchmark: { type: "boolean" },
    version: { type: "boolean" },
    tasks: { type: "string" },
    producers: { type: "string" },
    workers: { type: "string" },
    concurrency: { type: "string" },
    out: { type: "string" },
    db: { type: "string" },
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  if (values.version) {
    out(`${VERSION}\n`);
    return 0;
  }
  if (values.benchmark) return await benchmarkCommand(values);
  throw new UsageError("nothing to do");
}

/**
 * Runs the CLI with `args` and returns the exit code: 0 ok, 1 runtime
 * failure, 2 usage error (printed as `error: ...` on stderr).
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
