/**
 * Opening a SQLite database: picks the FFI driver over the system library
 * when it loads, the runtime's `node:sqlite` otherwise, and reports which.
 *
 * @module
 */
import { granted, readEnv } from "../../_env.ts";
import type { Database, DriverName, OpenDatabaseOptions } from "./database.ts";
import { probeSqlite } from "./ffi.ts";
import { FfiDatabase } from "./ffi_database.ts";
import { NodeSqliteDatabase } from "./node_database.ts";

/** Which driver `openDatabase` picks and why, from {@linkcode sqliteDriverInfo}. */
export interface SqliteDriverInfo {
  /** The driver used for `driver: "auto"`. */
  driver: DriverName;
  /** The library name or path FFI loaded (FFI only). */
  library?: string;
  /** The SQLite version, e.g. `"3.46.1"`. */
  version: string;
  /** Why this driver was chosen, for a start-up log line. */
  reason: string;
}

const DRIVERS: readonly string[] = ["auto", "ffi", "builtin"];

interface Choice {
  driver: DriverName;
  reason: string;
}

function choose(requested: DriverName | "auto"): Choice {
  if (requested !== "auto") {
    return { driver: requested, reason: `driver option is "${requested}"` };
  }
  const fromEnv = readEnv("SLUICE_SQLITE_DRIVER");
  if (fromEnv === "ffi" || fromEnv === "builtin") {
    return { driver: fromEnv, reason: `SLUICE_SQLITE_DRIVER is "${fromEnv}"` };
  }
  if (fromEnv !== undefined && fromEnv !== "" && fromEnv !== "auto") {
    throw new TypeError(
      `Cannot choose a SQLite driver: SLUICE_SQLITE_DRIVER is "${fromEnv}", expected "ffi", "builtin" or "auto"`,
    );
  }
  try {
    const { path } = probeSqlite();
    return { driver: "ffi", reason: `system library ${path} loaded` };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { driver: "builtin", reason: `FFI unavailable (${message})` };
  }
}

let builtinVersion: string | undefined;

/**
 * Reports which driver `openDatabase(path)` would use with
 * `driver: "auto"`, the SQLite version behind it and why, so start-up can
 * log it. Loads the system library if that has not happened yet.
 *
 * @returns The driver, its library (FFI only), the SQLite version and the reason.
 * @throws {TypeError} When `SLUICE_SQLITE_DRIVER` holds an unknown driver name.
 * @throws {Error} When `SLUICE_SQLITE_DRIVER` is `"ffi"` and the library cannot load.
 *
 * @example Logging the driver at start-up
 * ```ts
 * import { sqliteDriverInfo } from "./open_database.ts";
 * import assert from "node:assert/strict";
 *
 * const info = sqliteDriverInfo();
 * assert.ok(info.driver === "ffi" || info.driver === "builtin");
 * assert.match(info.version, /^3\.\d+\.\d+/);
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export function sqliteDriverInfo(): SqliteDriverInfo {
  const { driver, reason } = choose("auto");
  if (driver === "ffi") {
    const { path, version } = probeSqlite();
    return { driver, library: path, version, reason };
  }
  if (builtinVersion === undefined) {
    using db = new NodeSqliteDatabase(":memory:");
    builtinVersion = String(
      db.prepare("SELECT sqlite_version() AS v").get()?.v,
    );
  }
  return { driver, version: builtinVersion, reason };
}

/**
 * Opens (creating unless `readonly`) the SQLite database at `path` with the
 * chosen driver: `options.driver`, else `SLUICE_SQLITE_DRIVER`, else FFI
 * when the system library loads and `node:sqlite` otherwise. The file's
 * header is read at once, so a file that is not a database fails here.
 *
 * @param path A file path, or `":memory:"`.
 * @param options Driver choice and read-only mode.
 * @returns The open database; close it (or `using`) to finalize its statements.
 * @throws {TypeError} When an option or `SLUICE_SQLITE_DRIVER` has an invalid value.
 * @throws {SqliteError} When the file cannot be opened or is not a database.
 * @throws {Error} When the FFI driver is required and the library cannot load.
 *
 * @example Round-tripping a row
 * ```ts
 * import { openDatabase } from "./open_database.ts";
 * import assert from "node:assert/strict";
 *
 * using db = openDatabase(":memory:");
 * db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER, name TEXT)");
 * const now = Date.now();
 * db.prepare("INSERT INTO t (at, name) VALUES (?, ?)").run(now, "a");
 * assert.deepEqual(
 *   { ...db.prepare("SELECT at, name FROM t WHERE id = ?").get(1) },
 *   { at: now, name: "a" },
 * );
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export function openDatabase(
  path: string,
  options: OpenDatabaseOptions = {},
): Database {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(
      `Cannot open database: path must be a non-empty string, got ${
        typeof path === "string" ? '""' : typeof path
      }`,
    );
  }
  const { driver = "auto", readonly = false } = options;
  if (!DRIVERS.includes(driver)) {
    throw new TypeError(
      `Cannot open database: options.driver must be "auto", "ffi" or "builtin", got ${
        JSON.stringify(driver)
      }`,
    );
  }
  if (typeof readonly !== "boolean") {
    throw new TypeError(
      `Cannot open database: options.readonly must be a boolean, got ${
        JSON.stringify(readonly)
      }`,
    );
  }
  checkAccess(path, readonly);
  const chosen = choose(driver).driver;
  return chosen === "ffi"
    ? new FfiDatabase(path, readonly)
    : new NodeSqliteDatabase(path, readonly);
}

/**
 * Refuses, without prompting, a database file the process may not read (or,
 * unless read-only, write). Checked for both drivers alike: the FFI driver
 * opens files through SQLite itself, past Deno's own checks, and a
 * least-privilege command line should mean the same with either.
 */
function checkAccess(path: string, readonly: boolean): void {
  if (path === ":memory:") return;
  for (
    const name of readonly ? ["read"] as const : ["read", "write"] as const
  ) {
    if (!granted({ name, path })) {
      throw new Deno.errors.NotCapable(
        `Cannot open database ${path}: ${name} access to it is not granted (run with --allow-${name}=${path})`,
      );
    }
  }
}
