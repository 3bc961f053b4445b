/**
 * Configuration of the command line: flags win over `SLUICE_*` environment
 * variables, which win over defaults. Reading the environment never fails
 * and never prompts: without `--allow-env` every variable reads as unset.
 *
 * One table ({@linkcode CONFIG_DOCS}) names each setting's flag, variable,
 * default and meaning; the help of every command is printed from it.
 *
 * @module
 */
import { readEnv as readVariable } from "../_env.ts";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "../log.ts";
import { DEFAULT_RETENTION } from "../queue/options.ts";

/** The settings the CLI commands share. */
export interface CliConfig {
  /** SQLite file path, or a `postgres://` / `postgresql://` URL. */
  db: string;
  /** Worker threads. */
  workers: number;
  /** Tasks at once per worker. */
  concurrency: number;
  /** Channel capacity. */
  capacity: number;
  /** What a full channel does. */
  overflow: "block" | "reject";
  /** Attempts per task. */
  maxAttempts: number;
  /** Per-task timeout in ms; 0 for none. */
  taskTimeoutMs: number;
  /** Least severe log level written. */
  logLevel: LogLevel;
  /** Log line format. */
  logFormat: LogFormat;
  /** Port of the metrics endpoint, or `null` for none. */
  metricsPort: number | null;
  /** Object store root. */
  objects: string;
  /** SQLite driver. */
  sqliteDriver: "ffi" | "builtin" | "auto";
  /** SQLite `synchronous`. */
  synchronous: "NORMAL" | "FULL" | "OFF";
  /** PostgreSQL schema holding the queue (used when `db` is a URL). */
  pgSchema: string;
  /** Whether finished tasks are pruned at all (`false`: all are kept). */
  retention: boolean;
  /** Succeeded tasks are kept this long, ms (`Infinity`: no age limit). */
  keepSucceededFor: number;
  /** At most this many succeeded tasks are kept (`Infinity`: no limit). */
  keepSucceeded: number;
  /** Dead-lettered tasks are kept this long, ms (`Infinity`: no age limit). */
  keepDeadFor: number;
  /** At most this many dead-lettered tasks are kept (`Infinity`: no limit). */
  keepDead: number;
  /**
   * Retention settings of particular queues, by queue name: each replaces
   * the setting of the same name for that queue's tasks.
   */
  queueRetention: QueueKeeps;
}

/** The retention settings one queue may set for itself. */
export type KeepKey =
  | "keepSucceededFor"
  | "keepSucceeded"
  | "keepDeadFor"
  | "keepDead";

/** Retention settings of particular queues, by queue name. */
export type QueueKeeps = Readonly<
  Record<string, Readonly<Partial<Record<KeepKey, number>>>>
>;

/** A configuration key. */
export type ConfigKey = keyof CliConfig;

/** How one setting is documented: in `--help` and the README alike. */
export interface ConfigDoc {
  /** The flag. */
  flag: string;
  /** The environment variable. */
  env: string;
  /** The flag's argument, as the help shows it (`N`, `PATH|URL`). */
  arg: string;
  /** The default, as the help shows it. */
  default: string;
  /** What it sets. */
  meaning: string;
  /**
   * A flag without a value that is short for this setting's flag with
   * one value (`--no-retention` for `--retention off`).
   *
   * @default {undefined}
   */
  shorthand?: { readonly flag: string; readonly value: string };
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** The longest duration accepted: 100 years, in ms. */
export const MAX_DURATION_MS: number = 100 * 365 * DURATION_UNITS["d"]!;

const DEFAULT_SUCCEEDED = DEFAULT_RETENTION.succeeded ?? {};
const DEFAULT_DEAD = DEFAULT_RETENTION.dead ?? {};

/** Flag, variable, default and meaning of every setting. */
export const CONFIG_DOCS: { readonly [K in ConfigKey]: ConfigDoc } = {
  db: {
    flag: "--db",
    env: "SLUICE_DB",
    arg: "PATH|URL",
    default: "tasks.db",
    meaning: "SQLite file, or a postgres:// URL",
  },
  pgSchema: {
    flag: "--pg-schema",
    env: "SLUICE_PG_SCHEMA",
    arg: "NAME",
    default: "sluice",
    meaning: "PostgreSQL schema holding the queue",
  },
  workers: {
    flag: "--workers",
    env: "SLUICE_WORKERS",
    arg: "N",
    default: "core count",
    meaning: "Worker threads",
  },
  concurrency: {
    flag: "--concurrency",
    env: "SLUICE_CONCURRENCY",
    arg: "C",
    default: "1",
    meaning: "Tasks at once per worker",
  },
  capacity: {
    flag: "--capacity",
    env: "SLUICE_CAPACITY",
    arg: "N",
    default: "1024",
    meaning: "Bounded channel in front of the pool",
  },
  overflow: {
    flag: "--overflow",
    env: "SLUICE_OVERFLOW",
    arg: "MODE",
    default: "block",
    meaning: "Full channel: block waits, reject fails fast",
  },
  maxAttempts: {
    flag: "--max-attempts",
    env: "SLUICE_MAX_ATTEMPTS",
    arg: "N",
    default: "3",
    meaning: "Attempts before the dead-letter queue",
  },
  taskTimeoutMs: {
    flag: "--task-timeout-ms",
    env: "SLUICE_TASK_TIMEOUT_MS",
    arg: "MS",
    default: "30000",
    meaning: "Per-task timeout (0: none)",
  },
  logLevel: {
    flag: "--log-level",
    env: "SLUICE_LOG_LEVEL",
    arg: "LEVEL",
    default: "info",
    meaning: `Log level: ${LOG_LEVELS.join(", ")}`,
  },
  logFormat: {
    flag: "--log-format",
    env: "SLUICE_LOG_FORMAT",
    arg: "FORMAT",
    default: "json",
    meaning: "Log lines: json, or pretty",
  },
  metricsPort: {
    flag: "--metrics-port",
    env: "SLUICE_METRICS_PORT",
    arg: "P",
    default: "off",
    meaning: "Prometheus /metrics, /healthz on 127.0.0.1:P (0: any)",
  },
  objects: {
    flag: "--objects",
    env: "SLUICE_OBJECTS",
    arg: "DIR",
    default: "objects",
    meaning: "Object store root (handlers' ctx.objects)",
  },
  sqliteDriver: {
    flag: "--sqlite-driver",
    env: "SLUICE_SQLITE_DRIVER",
    arg: "NAME",
    default: "auto",
    meaning: "SQLite driver: ffi, builtin (node:sqlite) or auto",
  },
  synchronous: {
    flag: "--synchronous",
    env: "SLUICE_SYNCHRONOUS",
    arg: "MODE",
    default: "NORMAL",
    meaning: "SQLite synchronous: NORMAL, FULL or OFF",
  },
  retention: {
    flag: "--retention",
    env: "SLUICE_RETENTION",
    arg: "on|off",
    default: "on",
    meaning: "Prune finished tasks (off: keep every task)",
    shorthand: { flag: "--no-retention", value: "off" },
  },
  keepSucceededFor: {
    flag: "--keep-succeeded-for",
    env: "SLUICE_KEEP_SUCCEEDED_FOR",
    arg: "DURATION",
    default: formatDuration(DEFAULT_SUCCEEDED.maxAgeMs ?? Infinity),
    meaning: "Keep succeeded tasks this long (e.g. 15m, 24h, 7d)",
  },
  keepSucceeded: {
    flag: "--keep-succeeded",
    env: "SLUICE_KEEP_SUCCEEDED",
    arg: "N",
    default: formatCount(DEFAULT_SUCCEEDED.maxCount ?? Infinity),
    meaning: "Keep at most the N newest succeeded tasks (or all)",
  },
  keepDeadFor: {
    flag: "--keep-dead-for",
    env: "SLUICE_KEEP_DEAD_FOR",
    arg: "DURATION",
    default: formatDuration(DEFAULT_DEAD.maxAgeMs ?? Infinity),
    meaning: "Keep dead-lettered tasks this long (or forever)",
  },
  keepDead: {
    flag: "--keep-dead",
    env: "SLUICE_KEEP_DEAD",
    arg: "N",
    default: formatCount(DEFAULT_DEAD.maxCount ?? Infinity),
    meaning: "Keep at most the N newest dead-lettered tasks (or all)",
  },
  queueRetention: {
    flag: "--queue-retention",
    env: "SLUICE_QUEUE_RETENTION",
    arg: "RULES",
    default: "none",
    meaning:
      "Per-queue keep-* settings: QUEUE:SETTING=VALUE, comma-separated\n(e.g. reports:keep-succeeded-for=7d,reports:keep-dead=100)",
  },
};

/** Environment variable of each key. */
export const ENV_NAMES: { readonly [K in ConfigKey]: string } = mapDocs((d) =>
  d.env
);

/** Command-line flag of each key. */
export const FLAG_NAMES: { readonly [K in ConfigKey]: string } = mapDocs((d) =>
  d.flag
);

function mapDocs(
  pick: (doc: ConfigDoc) => string,
): { [K in ConfigKey]: string } {
  const result = {} as { [K in ConfigKey]: string };
  for (const key of Object.keys(CONFIG_DOCS) as ConfigKey[]) {
    result[key] = pick(CONFIG_DOCS[key]);
  }
  return result;
}

/**
 * The help lines of the given settings: flag and argument, and meaning;
 * then variable and default.
 *
 * @param keys The settings a command takes, in the order to list them.
 * @returns The lines, each ending in a newline.
 */
export function configHelp(keys: readonly ConfigKey[]): string {
  return keys.map((key) => {
    const doc = CONFIG_DOCS[key];
    const shorthand = doc.shorthand === undefined
      ? ""
      : `  ${
        doc.shorthand.flag.padEnd(23)
      }Short for ${doc.flag} ${doc.shorthand.value}\n`;
    const flag = `${doc.flag} ${doc.arg}`;
    // A flag too long for its column puts the meaning on the next line.
    const head = flag.length < 23
      ? `  ${flag.padEnd(23)}${doc.meaning}\n`
      : `  ${flag}\n${" ".repeat(25)}${doc.meaning}\n`;
    return `${head}${
      " ".repeat(25)
    }(${doc.env}, default ${doc.default})\n${shorthand}`;
  }).join("");
}

/** A bad flag or environment value; the CLI reports it as a usage error. */
export class ConfigError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the flag or variable and its value.
   */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads the `SLUICE_*` variables. A variable the process may not read
 * (no `--allow-env`, or an allow list without it) reads as unset; the
 * permission is queried first, so no prompt is shown.
 *
 * @param names The variables to read.
 * @returns The values that are set and not empty.
 */
export function readEnv(
  names: readonly string[] = Object.values(ENV_NAMES),
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) {
    const value = readVariable(name);
    if (value !== undefined && value !== "") values[name] = value;
  }
  return values;
}

function defaults(): CliConfig {
  return {
    db: "tasks.db",
    workers: Math.max(1, navigator.hardwareConcurrency || 1),
    concurrency: 1,
    capacity: 1024,
    overflow: "block",
    maxAttempts: 3,
    taskTimeoutMs: 30_000,
    logLevel: "info",
    logFormat: "json",
    metricsPort: null,
    objects: "objects",
    sqliteDriver: "auto",
    synchronous: "NORMAL",
    pgSchema: "sluice",
    retention: true,
    keepSucceededFor: DEFAULT_SUCCEEDED.maxAgeMs ?? Infinity,
    keepSucceeded: DEFAULT_SUCCEEDED.maxCount ?? Infinity,
    keepDeadFor: DEFAULT_DEAD.maxAgeMs ?? Infinity,
    keepDead: DEFAULT_DEAD.maxCount ?? Infinity,
    queueRetention: {},
  };
}

/** An ISO 8601 date and time with its zone, `Z` or `±hh:mm`. */
const ISO_TIME =
  /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** Days in `month` (1 to 12) of `year`, by the proleptic Gregorian calendar. */
function daysIn(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 2
    ? (leap ? 29 : 28)
    : [4, 6, 9, 11].includes(month)
    ? 30
    : 31;
}

/**
 * Reads an ISO 8601 time that names its zone (`2026-12-01T09:00:00Z`,
 * `…+01:00`) as epoch ms. A time without a zone is refused rather than
 * read in this machine's zone, and so is a day its month does not have
 * (`Date.parse` would roll it into the next month).
 *
 * @param text The time.
 * @returns Epoch ms; `null` when `text` is not such a time; `NaN` when it
 *   is one but outside what a `Date` holds.
 */
export function parseIsoTime(text: string): number | null {
  const match = ISO_TIME.exec(text);
  if (match === null) return null;
  const [, y, mo, d, h, mi, s = "0", oh = "0", om = "0"] = match;
  const year = Number(y), month = Number(mo), day = Number(d);
  const valid = month >= 1 && month <= 12 && day >= 1 &&
    day <= daysIn(year, month) && Number(h) <= 23 && Number(mi) <= 59 &&
    Number(s) <= 59 && Number(oh) <= 23 && Number(om) <= 59;
  return valid ? Date.parse(text) : null;
}

/**
 * Parses a duration: a number with a unit (`500ms`, `30s`, `15m`, `24h`,
 * `7d`), several of them (`1h30m`), or `0`.
 *
 * @param source The flag or variable, for the message.
 * @param text The value as given.
 * @param options `min`, the least value allowed in ms (default 0);
 *   `forever`, whether the word `forever` is accepted (as `Infinity`).
 * @returns The duration in milliseconds.
 * @throws {ConfigError} Naming `source` and `text` when it is not one, or out of range.
 */
export function parseDuration(
  source: string,
  text: string,
  options: { min?: number; forever?: boolean } = {},
): number {
  const { min = 0, forever = false } = options;
  const value = text.trim().toLowerCase();
  if (forever && value === "forever") return Infinity;
  let ms = NaN;
  if (value === "0") {
    ms = 0;
  } else if (/^(?:\d+(?:ms|s|m|h|d))+$/.test(value)) {
    ms = 0;
    for (const [, n, unit] of value.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
      ms += Number(n) * DURATION_UNITS[unit!]!;
    }
  }
  if (Number.isNaN(ms)) {
    throw new ConfigError(
      `${source} must be a duration such as 30s, 15m, 24h or 7d${
        forever ? " (or forever)" : ""
      }, got ${JSON.stringify(text)}`,
    );
  }
  if (ms < min || ms > MAX_DURATION_MS) {
    throw new ConfigError(
      `${source} must be from ${formatDuration(min)} to ${
        formatDuration(MAX_DURATION_MS)
      }, got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

/**
 * A duration as {@linkcode parseDuration} reads it: in the largest unit
 * that divides it (`86400000` → `24h` is `1d`), `forever` for `Infinity`.
 *
 * @param ms The duration.
 * @returns The text.
 */
export function formatDuration(ms: number): string {
  if (ms === Infinity) return "forever";
  if (ms === 0) return "0";
  // Hours up to two days read better than days (the default is 24h).
  const units = ms < 2 * DURATION_UNITS["d"]!
    ? ["h", "m", "s", "ms"]
    : ["d", "h", "m", "s", "ms"];
  for (const unit of units) {
    const size = DURATION_UNITS[unit]!;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function formatCount(n: number): string {
  return n === Infinity ? "all" : String(n);
}

/**
 * Whether a retention setting is a count of tasks (`all` or an integer)
 * rather than a duration.
 *
 * @param key The setting.
 * @returns `true` for `keepSucceeded` and `keepDead`.
 */
export function isCountKey(key: KeepKey): boolean {
  return key === "keepSucceeded" || key === "keepDead";
}

/** The settings `--queue-retention` may name, as its items spell them. */
const KEEP_SETTINGS: Readonly<Record<string, KeepKey>> = {
  "keep-succeeded-for": "keepSucceededFor",
  "keep-succeeded": "keepSucceeded",
  "keep-dead-for": "keepDeadFor",
  "keep-dead": "keepDead",
};

/**
 * Per-queue retention settings: `QUEUE:SETTING=VALUE` items, separated by
 * commas (a queue name may hold `:`; the last one before `=` ends it), or
 * `none`.
 */
function parseQueueRetention(source: string, text: string): QueueKeeps {
  if (text.trim().toLowerCase() === "none") return {};
  // A Map, not an object: a queue may be named "__proto__".
  const keeps = new Map<string, Partial<Record<KeepKey, number>>>();
  for (const raw of text.split(",")) {
    const item = raw.trim();
    const eq = item.indexOf("=");
    const colon = eq < 0 ? -1 : item.lastIndexOf(":", eq);
    const key = KEEP_SETTINGS[item.slice(colon + 1, eq).trim()];
    const queue = item.slice(0, Math.max(colon, 0)).trim();
    if (eq < 0 || colon <= 0 || key === undefined || queue === "") {
      throw new ConfigError(
        `${source} must be QUEUE:SETTING=VALUE items, comma-separated, SETTING one of ${
          Object.keys(KEEP_SETTINGS).join(", ")
        }, got ${JSON.stringify(item)}`,
      );
    }
    if (queue.length > 128) {
      throw new ConfigError(
        `${source} names a queue of more than 128 characters, got ${
          JSON.stringify(queue)
        }`,
      );
    }
    const what = `${source} ${queue}:${item.slice(colon + 1, eq).trim()}`;
    const value = item.slice(eq + 1);
    let settings = keeps.get(queue);
    if (settings === undefined) keeps.set(queue, settings = {});
    settings[key] = isCountKey(key)
      ? parseKeep(what, value)
      : parseDuration(what, value, { forever: true });
  }
  return Object.fromEntries(keeps);
}

/** A count of tasks to keep: an integer, or `all` (`Infinity`). */
function parseKeep(source: string, text: string): number {
  if (text.trim().toLowerCase() === "all") return Infinity;
  try {
    return parseInteger(source, text, 0, Number.MAX_SAFE_INTEGER);
  } catch {
    throw new ConfigError(
      `${source} must be an integer >= 0 or all, got ${JSON.stringify(text)}`,
    );
  }
}

/**
 * Parses a decimal integer from `min` to `max`.
 *
 * @param source The flag or variable, for the message.
 * @param text The value as given.
 * @param min Least value allowed.
 * @param max Greatest value allowed.
 * @returns The integer.
 * @throws {ConfigError} Naming `source` and `text` when it is not one.
 */
export function parseInteger(
  source: string,
  text: string,
  min: number,
  max: number,
): number {
  const value = Number(text.trim());
  if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
    throw new ConfigError(
      `${source} must be an integer from ${min} to ${max}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value;
}

/**
 * Parses one of a fixed set of words.
 *
 * @param source The flag or variable, for the message.
 * @param text The value as given.
 * @param allowed The words accepted.
 * @param fold Case folding applied before comparing.
 * @returns The word.
 * @throws {ConfigError} Naming `source`, the words and `text`.
 */
export function parseChoice<T extends string>(
  source: string,
  text: string,
  allowed: readonly T[],
  fold: (s: string) => string = (s) => s.toLowerCase(),
): T {
  const value = fold(text.trim());
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(
      `${source} must be one of ${allowed.join(", ")}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value as T;
}

/** PostgreSQL schema names Sluice accepts: unquoted-safe identifiers. */
function schemaName(source: string, text: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(text)) {
    throw new ConfigError(
      `${source} must be a lower-case identifier (a-z, 0-9, _; at most 63), got ${
        JSON.stringify(text)
      }`,
    );
  }
  return text;
}

function nonEmpty(source: string, text: string): string {
  if (text === "") {
    throw new ConfigError(`${source} must not be empty`);
  }
  return text;
}

const PARSERS: {
  readonly [K in ConfigKey]: (source: string, text: string) => CliConfig[K];
} = {
  db: nonEmpty,
  workers: (s, t) => parseInteger(s, t, 1, 1024),
  concurrency: (s, t) => parseInteger(s, t, 1, 65_536),
  capacity: (s, t) => parseInteger(s, t, 1, 1 << 24),
  overflow: (s, t) => parseChoice(s, t, ["block", "reject"] as const),
  maxAttempts: (s, t) => parseInteger(s, t, 1, 1000),
  taskTimeoutMs: (s, t) => parseInteger(s, t, 0, 2 ** 31 - 1),
  logLevel: (s, t) => parseChoice(s, t, LOG_LEVELS),
  logFormat: (s, t) => parseChoice(s, t, ["json", "pretty"] as const),
  metricsPort: (s, t) => parseInteger(s, t, 0, 65_535),
  objects: nonEmpty,
  sqliteDriver: (s, t) =>
    parseChoice(s, t, ["ffi", "builtin", "auto"] as const),
  synchronous: (s, t) =>
    parseChoice(
      s,
      t,
      ["NORMAL", "FULL", "OFF"] as const,
      (x) => x.toUpperCase(),
    ),
  pgSchema: schemaName,
  retention: (s, t) => parseChoice(s, t, ["on", "off"] as const) === "on",
  keepSucceededFor: (s, t) => parseDuration(s, t, { forever: true }),
  keepSucceeded: parseKeep,
  keepDeadFor: (s, t) => parseDuration(s, t, { forever: true }),
  keepDead: parseKeep,
  queueRetention: parseQueueRetention,
};

/**
 * Resolves the configuration: for each key, the flag if given, else the
 * environment variable if set, else the default (the same for every
 * command).
 *
 * @param flags Flag values as parsed (strings), by key; `undefined` for absent.
 * @param env Environment values by variable name, e.g. from {@linkcode readEnv}.
 * @returns The configuration.
 * @throws {ConfigError} Naming the flag or variable and its value when a value is invalid.
 */
export function resolveConfig(
  flags: { readonly [K in ConfigKey]?: string | undefined },
  env: Readonly<Record<string, string | undefined>> = {},
): CliConfig {
  const config = defaults();
  const set = <K extends ConfigKey>(key: K): void => {
    const flag = flags[key];
    if (flag !== undefined) {
      config[key] = PARSERS[key](FLAG_NAMES[key], flag);
      return;
    }
    const name = ENV_NAMES[key];
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== "") {
      config[key] = PARSERS[key](name, fromEnv);
    }
  };
  for (const key of Object.keys(PARSERS) as ConfigKey[]) set(key);
  return config;
}
