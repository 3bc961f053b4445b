/**
 * What the two commands that run tasks (`run` and `start`) share: their
 * configuration settings, `--handlers`, and the queue options built from
 * them.
 *
 * @module
 */
import { Logger } from "../log.ts";
import type { TaskQueueOptions } from "../queue/types.ts";
import { type FlagSpec, type ParsedCommand, UsageError } from "./command.ts";
import type { CliConfig, ConfigKey } from "./config.ts";

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
];

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
 * @returns Pool, channel, retry, timeout, objects, logger and handlers.
 * @throws {UsageError} On a bad `--handlers`.
 */
export function workerOptions(
  parsed: ParsedCommand,
): TaskQueueOptions & { logger: Logger } {
  const cfg = parsed.config;
  const handlers = parsed.string("handlers");
  return {
    workers: cfg.workers,
    concurrency: cfg.concurrency,
    capacity: cfg.capacity,
    overflow: cfg.overflow,
    retry: { maxAttempts: cfg.maxAttempts },
    timeoutMs: cfg.taskTimeoutMs,
    objectsRoot: cfg.objects,
    logger: cliLogger(cfg),
    ...(handlers !== undefined && { handlers: handlerUrl(handlers) }),
  };
}
