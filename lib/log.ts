/**
 * Structured logging: one line per event, JSON for machines or key=value
 * for terminals, with levels that cost nothing when switched off.
 *
 * @module
 */
import type { LogFields, TaskLogger } from "./handler.ts";

export type { LogFields, TaskLogger };

/** A log level, least to most severe; `"silent"` logs nothing. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** How lines are written: `"json"` (one object per line) or `"pretty"`. */
export type LogFormat = "json" | "pretty";

const LEVELS: { readonly [K in LogLevel]: number } = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 50,
};

/** Every level's name, least severe first: the one table of levels. */
export const LOG_LEVELS: readonly LogLevel[] = Object.keys(
  LEVELS,
) as LogLevel[];
const LEVEL_NAMES = LOG_LEVELS;

/**
 * The standard field names, so every module spells them alike.
 *
 * - `task_id`: the task's id (string).
 * - `idempotency_key`: the task's idempotency key (string or null).
 * - `attempt`: 1 for the first run, 2 for the first retry (number).
 * - `error_class`: `"transient"` or `"permanent"`.
 * - `duration_ms`: how long the event took, in milliseconds (number).
 *
 * @example Logging with standard fields
 * ```ts
 * import { LOG_FIELDS } from "./log.ts";
 * import { Logger } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const log = new Logger({ sink: (line) => lines.push(line) });
 * log.info("task_succeeded", {
 *   [LOG_FIELDS.taskId]: "t1",
 *   [LOG_FIELDS.durationMs]: 12,
 * });
 * assert.equal(JSON.parse(lines[0]!).task_id, "t1");
 * ```
 */
export const LOG_FIELDS = {
  /** The task's id. */
  taskId: "task_id",
  /** The task's idempotency key. */
  idempotencyKey: "idempotency_key",
  /** The attempt number, from 1. */
  attempt: "attempt",
  /** `"transient"` or `"permanent"`. */
  errorClass: "error_class",
  /** A duration in milliseconds. */
  durationMs: "duration_ms",
} as const;

/**
 * Options for {@linkcode Logger}.
 *
 * @example A debug logger collecting lines
 * ```ts
 * import { Logger, type LoggerOptions } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const options: LoggerOptions = {
 *   level: "debug",
 *   sink: (line) => lines.push(line),
 * };
 * new Logger(options).debug("hello");
 * assert.equal(lines.length, 1);
 * ```
 */
export interface LoggerOptions {
  /**
   * The least severe level written.
   *
   * @default {"info"}
   */
  level?: LogLevel;
  /**
   * `"json"` writes `{"time","level","event",...fields}` per line;
   * `"pretty"` writes `time LEVEL event key=value ...`.
   *
   * @default {"json"}
   */
  format?: LogFormat;
  /**
   * Receives each line, without a trailing line break.
   *
   * @default {writes the line and "\n" to stderr with Deno.stderr.writeSync}
   */
  sink?: (line: string) => void;
  /**
   * Wall clock in epoch milliseconds, for the `time` field.
   *
   * @default {Date.now}
   */
  clock?: () => number;
  /**
   * Whether `"pretty"` lines use ANSI colours.
   *
   * @default {true when the default sink writes to a terminal and NO_COLOR is unset}
   */
  color?: boolean;
}

const encoder = new TextEncoder();

function stderrSink(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += Deno.stderr.writeSync(bytes.subarray(written));
  }
}

function stderrIsColorTerminal(): boolean {
  try {
    return !Deno.noColor && Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

const COLORS: { readonly [K in LogLevel]: string } = {
  debug: "\x1b[90m",
  info: "\x1b[32m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
  silent: "",
};
const RESET = "\x1b[0m";
const LABELS: { readonly [K in LogLevel]: string } = {
  debug: "DEBUG",
  info: "INFO ",
  warn: "WARN ",
  error: "ERROR",
  silent: "",
};

/**
 * A JSON replacer that never throws: BigInt becomes a decimal string, an
 * object already on the path from the root becomes `"[Circular]"`, and an
 * `Error` becomes `{ name, message, cause? }`.
 */
function safeReplacer(): (
  this: unknown,
  key: string,
  value: unknown,
) => unknown {
  // The holders from the root down to the value being visited.
  const ancestors: unknown[] = [];
  return function (this: unknown, _key: string, value: unknown): unknown {
    if (typeof value === "bigint") return value.toString();
    if (typeof value !== "object" || value === null) return value;
    while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
    if (ancestors.includes(value)) return "[Circular]";
    ancestors.push(value);
    if (value instanceof Error) {
      const plain: Record<string, unknown> = {
        name: value.name,
        message: value.message,
      };
      if (value.cause !== undefined) plain.cause = value.cause;
      return plain;
    }
    return value;
  };
}

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value, safeReplacer()) ?? "null";
  } catch (error) {
    // A throwing getter or toJSON: report it rather than lose the line.
    return JSON.stringify(`[Unserializable: ${String(error)}]`);
  }
}

function isPlain(fields: LogFields): boolean {
  for (const key in fields) {
    const type = typeof fields[key];
    if (type === "object" || type === "bigint") return false;
  }
  return true;
}

function prettyValue(value: unknown): string {
  if (typeof value === "string") {
    return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  }
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "object" && value !== null) return stringify(value);
  return String(value);
}

const RESERVED = new Set(["time", "level", "event"]);

/**
 * Parses a log level name, ignoring case and surrounding space.
 *
 * @param text The level's name, e.g. from an environment variable.
 * @returns The level.
 * @throws {RangeError} When `text` names no level.
 *
 * @example Parsing a level from configuration
 * ```ts
 * import { parseLogLevel } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseLogLevel(" WARN "), "warn");
 * assert.throws(() => parseLogLevel("verbose"), RangeError);
 * ```
 */
export function parseLogLevel(text: string): LogLevel {
  const name = String(text).trim().toLowerCase();
  if (Object.hasOwn(LEVELS, name)) return name as LogLevel;
  throw new RangeError(
    `Cannot parse log level: ${JSON.stringify(String(text))} is not one of ${
      LEVEL_NAMES.join(", ")
    }`,
  );
}

/**
 * A structured logger. Each line carries `time` (ISO 8601), `level`,
 * `event` (a snake_case name for what happened), the fields bound with
 * {@linkcode Logger.child}, then the call's fields; see
 * {@linkcode LOG_FIELDS} for the standard names. A call below the level
 * returns at once, without allocating or serializing; guard expensive
 * fields with {@linkcode Logger.enabled}. Fields that JSON cannot hold do not
 * throw: BigInt becomes a string and cycles become `"[Circular]"`. A field
 * named `time`, `level` or `event` is written as `field.<name>`.
 *
 * @example Logging task events as JSON lines
 * ```ts
 * import { Logger } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const log = new Logger({ sink: (line) => lines.push(line), clock: () => 0 });
 * const taskLog = log.child({ task_id: "t1", attempt: 1 });
 * taskLog.debug("too_detailed");
 * taskLog.info("task_succeeded", { duration_ms: 12 });
 * assert.deepEqual(lines.map((line) => JSON.parse(line)), [{
 *   time: "1970-01-01T00:00:00.000Z",
 *   level: "info",
 *   event: "task_succeeded",
 *   task_id: "t1",
 *   attempt: 1,
 *   duration_ms: 12,
 * }]);
 * ```
 */
export class Logger implements TaskLogger {
  #level: LogLevel;
  #threshold: number;
  #format: LogFormat;
  #sink: (line: string) => void;
  #clock: () => number;
  #color: boolean;
  #bound: LogFields = {};

  /**
   * Creates a logger.
   *
   * @param options See {@linkcode LoggerOptions}.
   * @throws {RangeError} When `level` or `format` is not a known value.
   * @throws {TypeError} When `sink` or `clock` is not a function, or `color`
   * is not a boolean.
   */
  constructor(options: LoggerOptions = {}) {
    const {
      level = "info",
      format = "json",
      sink,
      clock = Date.now,
      color,
    } = options;
    if (!Object.hasOwn(LEVELS, level)) {
      throw new RangeError(
        `Cannot create logger: option "level" must be one of ${
          LEVEL_NAMES.join(", ")
        }, got ${JSON.stringify(level)}`,
      );
    }
    if (format !== "json" && format !== "pretty") {
      throw new RangeError(
        `Cannot create logger: option "format" must be "json" or "pretty", got ${
          JSON.stringify(format)
        }`,
      );
    }
    if (sink !== undefined && typeof sink !== "function") {
      throw new TypeError(
        `Cannot create logger: option "sink" must be a function, got ${typeof sink}`,
      );
    }
    if (typeof clock !== "function") {
      throw new TypeError(
        `Cannot create logger: option "clock" must be a function, got ${typeof clock}`,
      );
    }
    if (color !== undefined && typeof color !== "boolean") {
      throw new TypeError(
        `Cannot create logger: option "color" must be a boolean, got ${typeof color}`,
      );
    }
    this.#level = level;
    this.#threshold = LEVELS[level];
    this.#format = format;
    this.#sink = sink ?? stderrSink;
    this.#clock = clock;
    this.#color = color ??
      (format === "pretty" && sink === undefined && stderrIsColorTerminal());
  }

  /** The least severe level written. */
  get level(): LogLevel {
    return this.#level;
  }

  /** How lines are written. */
  get format(): LogFormat {
    return this.#format;
  }

  /**
   * Reports whether a line at `level` would be written, so a caller can skip
   * building costly fields.
   *
   * @param level The level to test.
   * @returns `true` when `level` is at or above the logger's level.
   *
   * @example Skipping costly fields
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const log = new Logger({ level: "warn", sink: () => {} });
   * assert.equal(log.enabled("info"), false);
   * assert.equal(log.enabled("error"), true);
   * ```
   */
  enabled(level: LogLevel): boolean {
    return level !== "silent" && LEVELS[level] >= this.#threshold;
  }

  /**
   * Creates a logger that adds `fields` to every line; the call's own fields
   * win on a clash. Level, format, sink and clock are shared.
   *
   * @param fields Fields to bind, e.g. `{ task_id, attempt }`.
   * @returns The child logger.
   *
   * @example Binding a task id
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const lines: string[] = [];
   * const log = new Logger({ sink: (line) => lines.push(line) });
   * log.child({ task_id: "t9" }).warn("slow");
   * assert.equal(JSON.parse(lines[0]!).task_id, "t9");
   * ```
   */
  child(fields: LogFields): Logger {
    const child = new Logger({
      level: this.#level,
      format: this.#format,
      sink: this.#sink,
      clock: this.#clock,
      color: this.#color,
    });
    child.#bound = { ...this.#bound, ...fields };
    return child;
  }

  /**
   * Writes a debug line.
   *
   * @param event A snake_case name for what happened.
   * @param fields Extra fields for the line.
   *
   * @example Logging at debug level
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const lines: string[] = [];
   * new Logger({ level: "debug", sink: (l) => lines.push(l) }).debug("tick");
   * assert.equal(JSON.parse(lines[0]!).level, "debug");
   * ```
   */
  debug(event: string, fields?: LogFields): void {
    if (this.#threshold > LEVELS.debug) return;
    this.#write("debug", event, fields);
  }

  /**
   * Writes an info line.
   *
   * @param event A snake_case name for what happened.
   * @param fields Extra fields for the line.
   *
   * @example Logging at info level
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const lines: string[] = [];
   * new Logger({ sink: (l) => lines.push(l) }).info("started", { workers: 4 });
   * assert.equal(JSON.parse(lines[0]!).workers, 4);
   * ```
   */
  info(event: string, fields?: LogFields): void {
    if (this.#threshold > LEVELS.info) return;
    this.#write("info", event, fields);
  }

  /**
   * Writes a warning.
   *
   * @param event A snake_case name for what happened.
   * @param fields Extra fields for the line.
   *
   * @example Logging a warning
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const lines: string[] = [];
   * new Logger({ sink: (l) => lines.push(l) }).warn("retrying");
   * assert.equal(JSON.parse(lines[0]!).level, "warn");
   * ```
   */
  warn(event: string, fields?: LogFields): void {
    if (this.#threshold > LEVELS.warn) return;
    this.#write("warn", event, fields);
  }

  /**
   * Writes an error line.
   *
   * @param event A snake_case name for what happened.
   * @param fields Extra fields for the line; an `Error` value is written as
   * `{ name, message, cause? }`.
   *
   * @example Logging an error
   * ```ts
   * import { Logger } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const lines: string[] = [];
   * new Logger({ sink: (l) => lines.push(l) })
   *   .error("task_failed", { error: new Error("boom") });
   * assert.equal(JSON.parse(lines[0]!).error.message, "boom");
   * ```
   */
  error(event: string, fields?: LogFields): void {
    if (this.#threshold > LEVELS.error) return;
    this.#write("error", event, fields);
  }

  #write(level: LogLevel, event: string, fields: LogFields | undefined): void {
    const time = new Date(this.#clock()).toISOString();
    const record: LogFields = { time, level, event };
    this.#assign(record, this.#bound);
    if (fields !== undefined) this.#assign(record, fields);
    this.#sink(
      this.#format === "json"
        ? (isPlain(record) ? JSON.stringify(record) : stringify(record))
        : this.#pretty(level, time, event, record),
    );
  }

  #assign(record: LogFields, fields: LogFields): void {
    for (const key in fields) {
      if (!Object.hasOwn(fields, key)) continue;
      record[RESERVED.has(key) ? `field.${key}` : key] = fields[key];
    }
  }

  #pretty(
    level: LogLevel,
    time: string,
    event: string,
    record: LogFields,
  ): string {
    const label = this.#color
      ? `${COLORS[level]}${LABELS[level]}${RESET}`
      : LABELS[level];
    let line = `${time} ${label} ${event}`;
    for (const key in record) {
      if (RESERVED.has(key)) continue;
      line += ` ${key}=${prettyValue(record[key])}`;
    }
    return line;
  }
}
