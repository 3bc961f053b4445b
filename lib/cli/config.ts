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
}

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
}

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
    return `  ${`${doc.flag} ${doc.arg}`.padEnd(23)}${doc.meaning}\n${
      " ".repeat(25)
    }(${doc.env}, default ${doc.default})\n`;
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
  };
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
