/**
 * What the two commands that run tasks (`run` and `start`) share: their
 * configuration settings, `--handlers`, and the queue options built from
 * them.
 *
 * @module
 */
import { Logger } from "../log.ts";
import type { RetentionOptions, TaskQueueOptions } from "../queue/types.ts";
import type { QueueRetention, RetentionRule } from "../store/store.ts";
import { type FlagSpec, type ParsedCommand, UsageError } from "./command.ts";
import { workerPermissions } from "./worker_permissions.ts";
import {
  type CliConfig,
  CONFIG_DOCS,
  type ConfigKey,
  ENV_NAMES,
  FLAG_NAMES,
  formatDuration,
  isCountKey,
  type KeepKey,
} from "./config.ts";

/** The settings of a queue that runs tasks. */
export const WORKER_KEYS: readonly ConfigKey[] = [
  "db",
  "pgSchema",
  "workers",
  "concurrency",
  "capacity",
  "overflow",
  "maxAttempts",
  "taskTimeoutMs",
  "objects",
  "logLevel",
  "logFormat",
  "sqliteDriver",
  "synchronous",
  "retention",
  "keepSucceededFor",
  "keepSucceeded",
  "keepDeadFor",
  "keepDead",
  "queueRetention",
];

/** The settings that say what retention keeps. */
const KEEP_KEYS = [
  "keepSucceededFor",
  "keepSucceeded",
  "keepDeadFor",
  "keepDead",
  "queueRetention",
] as const satisfies readonly ConfigKey[];

function rule(maxAgeMs: number, maxCount: number): RetentionRule {
  return {
    ...(maxAgeMs !== Infinity && { maxAgeMs }),
    ...(maxCount !== Infinity && { maxCount }),
  };
}

/**
 * The queue's `retention` option from the retention settings: `false`
 * when retention is off, else a rule per finished status (a setting left
 * at its default keeps the queue's default for it).
 *
 * @param parsed The command line.
 * @returns The option.
 * @throws {UsageError} When a `--keep-*` flag is given while retention is
 *   off: it would have no effect.
 */
export function retentionOptions(
  parsed: ParsedCommand,
): RetentionOptions | false {
  const cfg = parsed.config;
  if (!cfg.retention) {
    const given = KEEP_KEYS.find((key) =>
      parsed.string(FLAG_NAMES[key].slice(2)) !== undefined
    );
    if (given !== undefined) {
      const off = parsed.boolean("no-retention")
        ? CONFIG_DOCS.retention.shorthand!.flag
        : parsed.string("retention") !== undefined
        ? `${FLAG_NAMES.retention} off`
        : `${ENV_NAMES.retention}=off`;
      throw new UsageError(
        `${FLAG_NAMES[given]} cannot take effect with ${off}: retention is off`,
      );
    }
    return false;
  }
  const queues = Object.fromEntries(
    Object.entries(cfg.queueRetention).map(([queue, keeps]) => {
      // A setting the queue leaves out is the one every queue has.
      const get = (key: KeepKey): number => keeps[key] ?? cfg[key];
      const rules: QueueRetention = {
        ...((keeps.keepSucceededFor !== undefined ||
          keeps.keepSucceeded !== undefined) && {
          succeeded: rule(get("keepSucceededFor"), get("keepSucceeded")),
        }),
        ...((keeps.keepDeadFor !== undefined ||
          keeps.keepDead !== undefined) && {
          dead: rule(get("keepDeadFor"), get("keepDead")),
        }),
      };
      return [queue, rules];
    }),
  );
  return {
    succeeded: rule(cfg.keepSucceededFor, cfg.keepSucceeded),
    dead: rule(cfg.keepDeadFor, cfg.keepDead),
    ...(Object.keys(queues).length > 0 && { queues }),
  };
}

/**
 * What retention keeps, for the start-up log line: `"off"`, or each
 * status's age and count limits as the flags spell them.
 *
 * @param cfg The configuration.
 * @returns The description.
 */
export function describeRetention(
  cfg: CliConfig,
): "off" | Record<string, string | number> {
  if (!cfg.retention) return "off";
  const count = (n: number): string | number => n === Infinity ? "all" : n;
  const queues = Object.entries(cfg.queueRetention).map(([queue, keeps]) =>
    Object.entries(keeps).map(([key, value]) =>
      `${queue}:${FLAG_NAMES[key as KeepKey].slice(2)}=${
        isCountKey(key as KeepKey) ? count(value) : formatDuration(value)
      }`
    ).join(",")
  ).join(",");
  return {
    keep_succeeded_for: formatDuration(cfg.keepSucceededFor),
    keep_succeeded: count(cfg.keepSucceeded),
    keep_dead_for: formatDuration(cfg.keepDeadFor),
    keep_dead: count(cfg.keepDead),
    ...(queues !== "" && { queue_retention: queues }),
  };
}

/** The `--handlers` flag. */
export const HANDLERS_FLAG: Readonly<Record<string, FlagSpec>> = {
  handlers: { type: "string" },
};

/** The help line of `--handlers`. */
export const HANDLERS_HELP: readonly [string, string] = [
  "--handlers URL",
  "Handler module (a file path or URL) whose named\nexports handle task types (default: the built-ins)",
];

/**
 * The logger the configuration asks for.
 *
 * @param cfg The configuration.
 * @returns The logger (stderr).
 */
export function cliLogger(cfg: CliConfig): Logger {
  return new Logger({ level: cfg.logLevel, format: cfg.logFormat });
}

/**
 * A `--handlers` value as a module URL: a URL as given, a path resolved
 * from the working directory.
 *
 * @param text The flag's value.
 * @returns The module's URL.
 * @throws {UsageError} When it is empty or a malformed URL.
 */
export function handlerUrl(text: string): URL {
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

/**
 * The options of a queue that runs tasks, from the parsed command line.
 *
 * @param parsed The command line.
 * @returns Pool, channel, retry, timeout, retention, objects, logger,
 *   handlers and worker permissions.
 * @throws {UsageError} On a bad `--handlers` or `--worker-allow-*`, or a
 *   `--keep-*` flag while retention is off.
 */
export function workerOptions(
  parsed: ParsedCommand,
): TaskQueueOptions & { logger: Logger } {
  const cfg = parsed.config;
  const handlers = parsed.string("handlers");
  const permissions = workerPermissions(parsed);
  return {
    workers: cfg.workers,
    concurrency: cfg.concurrency,
    capacity: cfg.capacity,
    overflow: cfg.overflow,
    retry: { maxAttempts: cfg.maxAttempts },
    timeoutMs: cfg.taskTimeoutMs,
    objectsRoot: cfg.objects,
    retention: retentionOptions(parsed),
    logger: cliLogger(cfg),
    ...(handlers !== undefined && { handlers: handlerUrl(handlers) }),
    ...(permissions !== undefined && { permissions }),
  };
}
