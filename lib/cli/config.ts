/**
 * Configuration of the command line: flags win over `SLUICE_*` environment
 * variables, which win over defaults. Reading the environment never fails:
 * without `--allow-env` every variable reads as unset.
 *
 * @module
 */

/** The settings the CLI subcommands share. */
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
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  /** Log line format. */
  logFormat: "json" | "pretty";
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

/** Environment variable of each key. */
export const ENV_NAMES: { readonly [K in ConfigKey]: string } = {
  db: "SLUICE_DB",
  workers: "SLUICE_WORKERS",
  concurrency: "SLUICE_CONCURRENCY",
  capacity: "SLUICE_CAPACITY",
  overflow: "SLUICE_OVERFLOW",
  maxAttempts: "SLUICE_MAX_ATTEMPTS",
  taskTimeoutMs: "SLUICE_TASK_TIMEOUT_MS",
  logLevel: "SLUICE_LOG_LEVEL",
  logFormat: "SLUICE_LOG_FORMAT",
  metricsPort: "SLUICE_METRICS_PORT",
  objects: "SLUICE_OBJECTS",
  sqliteDriver: "SLUICE_SQLITE_DRIVER",
  synchronous: "SLUICE_SYNCHRONOUS",
  pgSchema: "SLUICE_PG_SCHEMA",
};

/** Command-line flag of each key. */
export const FLAG_NAMES: { readonly [K in ConfigKey]: string } = {
  db: "--db",
  workers: "--workers",
  concurrency: "--concurrency",
  capacity: "--capacity",
  overflow: "--overflow",
  maxAttempts: "--max-attempts",
  taskTimeoutMs: "--task-timeout-ms",
  logLevel: "--log-level",
  logFormat: "--log-format",
  metricsPort: "--metrics-port",
  objects: "--objects",
  sqliteDriver: "--sqlite-driver",
  synchronous: "--synchronous",
  pgSchema: "--pg-schema",
};

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
 * (no `--allow-env`, or an allow list without it) reads as unset, and no
 * permission prompt is shown.
 *
 * @param names The variables to read.
 * @returns The values that are set.
 */
export function readEnv(
  names: readonly string[] = Object.values(ENV_NAMES),
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) {
    try {
      const state = Deno.permissions.querySync({ name: "env", variable: name })
        .state;
      if (state !== "granted") continue;
      const value = Deno.env.get(name);
      if (value !== undefined && value !== "") values[name] = value;
    } catch {
      // Unreadable is unset.
    }
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

function integer(
  source: string,
  text: string,
  min: number,
  max: number,
): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new ConfigError(
      `${source} must be an integer from ${min} to ${max}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value;
}

function oneOf<T extends string>(
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
  workers: (s, t) => integer(s, t, 1, 1024),
  concurrency: (s, t) => integer(s, t, 1, 65_536),
  capacity: (s, t) => integer(s, t, 1, 1 << 24),
  overflow: (s, t) => oneOf(s, t, ["block", "reject"] as const),
  maxAttempts: (s, t) => integer(s, t, 1, 1000),
  taskTimeoutMs: (s, t) => integer(s, t, 0, 2 ** 31 - 1),
  logLevel: (s, t) =>
    oneOf(s, t, ["debug", "info", "warn", "error", "silent"] as const),
  logFormat: (s, t) => oneOf(s, t, ["json", "pretty"] as const),
  metricsPort: (s, t) => integer(s, t, 0, 65_535),
  objects: nonEmpty,
  sqliteDriver: (s, t) => oneOf(s, t, ["ffi", "builtin", "auto"] as const),
  synchronous: (s, t) =>
    oneOf(s, t, ["NORMAL", "FULL", "OFF"] as const, (x) => x.toUpperCase()),
  pgSchema: schemaName,
};

/**
 * Resolves the configuration: for each key, the flag if given, else the
 * environment variable if set, else the default.
 *
 * @param flags Flag values as parsed (strings), by key; `undefined` for absent.
 * @param env Environment values by variable name, e.g. from {@linkcode readEnv}.
 * @param overrides Defaults that differ for one subcommand.
 * @returns The configuration.
 * @throws {ConfigError} Naming the flag or variable and its value when a value is invalid.
 */
export function resolveConfig(
  flags: { readonly [K in ConfigKey]?: string | undefined },
  env: Readonly<Record<string, string | undefined>> = {},
  overrides: Partial<CliConfig> = {},
): CliConfig {
  const config = { ...defaults(), ...overrides };
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
