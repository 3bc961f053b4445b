/**
 * `cli.ts start`: a long-lived worker process on a database, until SIGINT
 * or SIGTERM.
 *
 * @module
 */
import { checkQueueName } from "../store/_shared.ts";
import { dirname } from "node:path";
import { serveMetrics } from "../metrics/server.ts";
import {
  checkArg,
  type Command,
  defineCommand,
  helpText,
  MAX_MS,
  UsageError,
} from "./command.ts";
import type { ConfigKey } from "./config.ts";
import { describeDb, openQueue } from "./open.ts";
import { onStopSignals } from "./signals.ts";
import {
  describeRetention,
  HANDLERS_FLAG,
  HANDLERS_HELP,
  WORKER_KEYS,
  workerOptions,
} from "./worker_options.ts";
import {
  acceptBareAllowFlags,
  WORKER_PERMISSION_FLAGS,
  WORKER_PERMISSION_HELP,
} from "./worker_permissions.ts";

const KEYS: readonly ConfigKey[] = [...WORKER_KEYS, "metricsPort"];

const USAGE = helpText({
  usage: ["cli.ts start --db PATH|URL [options]"],
  about: `
Runs a worker process on a database until SIGINT or SIGTERM. The first signal
stops taking work and lets running tasks finish within --deadline; a second
signal exits at once (exit code 1). Tasks left unfinished stay in the
database and run on the next start.

With --db postgres://..., any number of start processes, on any hosts, share
the queue in --pg-schema: claims never hand one task to two of them, new work
wakes them through LISTEN/NOTIFY, and the tasks of a process that dies are
handed out again once their lease (--lease-ms) runs out.

--metrics-file is checked before anything starts: a directory that does not
exist, or a path that is a directory, is a usage error (exit 2); a file that
cannot be written (permissions) is a runtime failure (exit 1).

--queues names the queues this process claims from (default: default). It
claims only task types its --handlers module exports: a task of another
type waits for a process whose module exports it, and is never
dead-lettered for being unknown here. Two fleets share one database by
running start with different --queues and --handlers.`,
  options: [
    HANDLERS_HELP,
    [
      "--queues LIST",
      "Comma-separated queue names to claim from (default\ndefault)",
    ],
    [
      "--queue-concurrency L",
      "Per-queue limits, NAME=N,... (each of --queues): at\nmost N tasks of the queue held here at once",
    ],
    ...WORKER_PERMISSION_HELP,
    ["--deadline MS", "Graceful shutdown deadline (default 30000)"],
    [
      "--poll-interval-ms MS",
      "How often to look for new work, expired leases and\na lost database connection (default 100)",
    ],
    [
      "--lease-ms MS",
      "How long a claimed task stays this process's without\na heartbeat; a heartbeat renews every held task each\nlease-ms / 4, however long tasks run (default 30000)",
    ],
    [
      "--prefetch N",
      "Tasks claimed ahead of free slots (default: workers x\nconcurrency)",
    ],
    [
      "--metrics-file PATH",
      "Write the final metrics snapshot there on shutdown\n(CSV when PATH ends in .csv, JSON otherwise)",
    ],
  ],
  config: KEYS,
});

/** Reads `--queues a,b`: the names, each checked, without repeats. */
function parseQueues(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(",").map((name) => name.trim());
  for (const name of names) {
    checkArg(() => checkQueueName(name, `--queues ${JSON.stringify(text)}:`));
  }
  return [...new Set(names)];
}

/** Reads `--queue-concurrency a=2,b=1` against the queues claimed from. */
function parseQueueLimits(
  text: string | undefined,
  queues: readonly string[],
): Record<string, number> | undefined {
  if (text === undefined) return undefined;
  const limits: Record<string, number> = {};
  for (const item of text.split(",")) {
    const match = /^\s*([^=]+?)\s*=\s*(\d+)\s*$/.exec(item);
    const limit = match === null ? NaN : Number(match[2]);
    if (match === null || !Number.isSafeInteger(limit) || limit < 1) {
      throw new UsageError(
        `--queue-concurrency must be NAME=N items (N >= 1), comma-separated, got ${
          JSON.stringify(text)
        }`,
      );
    }
    if (!queues.includes(match[1]!)) {
      throw new UsageError(
        `--queue-concurrency names ${
          JSON.stringify(match[1])
        }, which is not one of --queues (${queues.join(", ")})`,
      );
    }
    limits[match[1]!] = limit;
  }
  return limits;
}

/**
 * Checks, before anything starts, that the final metrics can be written
 * to `path`, so that a typo does not surface only at shutdown.
 */
async function checkMetricsFile(path: string): Promise<void> {
  if (path === "") throw new UsageError("--metrics-file must not be empty");
  const dir = dirname(path);
  const kind = async (p: string): Promise<"dir" | "file" | "missing"> => {
    try {
      return (await Deno.stat(p)).isDirectory ? "dir" : "file";
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "missing";
      throw new Error(
        `Cannot write metrics file ${path}: ${(error as Error).message}`,
      );
    }
  };
  const parent = await kind(dir);
  if (parent !== "dir") {
    throw new UsageError(
      `--metrics-file ${JSON.stringify(path)}: directory ${
        JSON.stringify(dir)
      } ${parent === "missing" ? "does not exist" : "is a file"}`,
    );
  }
  const target = await kind(path);
  if (target === "dir") {
    throw new UsageError(
      `--metrics-file ${JSON.stringify(path)} is a directory`,
    );
  }
  try {
    (await Deno.open(path, { write: true, create: true })).close();
    if (target === "missing") await Deno.remove(path);
  } catch (error) {
    throw new Error(
      `Cannot write metrics file ${path}: ${(error as Error).message}`,
    );
  }
}

/** `cli.ts start`. */
export const start: Command = acceptBareAllowFlags(defineCommand({
  usage: USAGE,
  flags: {
    ...HANDLERS_FLAG,
    ...WORKER_PERMISSION_FLAGS,
    deadline: { type: "integer", min: 0, max: MAX_MS },
    "poll-interval-ms": { type: "integer", min: 1, max: MAX_MS },
    "lease-ms": { type: "integer", min: 1, max: MAX_MS },
    prefetch: { type: "integer", min: 0, max: 1 << 24 },
    "metrics-file": { type: "string" },
    queues: { type: "string" },
    "queue-concurrency": { type: "string" },
  },
  config: KEYS,
}, async (parsed) => {
  const queues = parseQueues(parsed.string("queues"));
  const queueConcurrency = parseQueueLimits(
    parsed.string("queue-concurrency"),
    queues ?? ["default"],
  );
  const cfg = parsed.config;
  const deadline = parsed.integer("deadline") ?? 30_000;
  const leaseMs = parsed.integer("lease-ms");
  const prefetch = parsed.integer("prefetch");
  const metricsFile = parsed.string("metrics-file");
  const options = workerOptions(parsed);
  if (metricsFile !== undefined) await checkMetricsFile(metricsFile);
  const log = options.logger;

  let signals = 0;
  let stop!: (signal: Deno.Signal) => void;
  const stopped = new Promise<Deno.Signal>((resolve) => (stop = resolve));
  const removeSignals = onStopSignals((signal) => {
    if (++signals === 1) {
      stop(signal);
      return;
    }
    log.warn("worker_killed", { signal });
    removeSignals();
    Deno.exit(1);
  });
  try {
    const queue = await openQueue(cfg, {
      ...options,
      pollIntervalMs: parsed.integer("poll-interval-ms") ?? 100,
      ...(metricsFile !== undefined && { metricsFile }),
      ...(leaseMs !== undefined && { leaseMs }),
      ...(prefetch !== undefined && { prefetch }),
      ...(queues !== undefined && { queues }),
      ...(queueConcurrency !== undefined && { queueConcurrency }),
    });
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
        queues: queues ?? ["default"],
        ...(queueConcurrency !== undefined &&
          { queue_concurrency: queueConcurrency }),
        retention: describeRetention(cfg),
        worker_permissions: options.permissions ?? "inherit",
        ...(server !== undefined && { metrics_port: server.port }),
      });
      const signal = await stopped;
      log.info("worker_stopping", { signal, deadline_ms: deadline });
      const report = await queue.close({ deadline });
      log.info("worker_stopped", {
        drained: report.drained,
        unfinished: report.unfinished,
        // The final metrics, also written to --metrics-file when given.
        counters: queue.metrics.snapshot().counters,
      });
    } finally {
      if (!queue.closed) await queue.close({ deadline: 0 });
      await server?.shutdown();
    }
  } finally {
    removeSignals();
  }
  return 0;
}));
