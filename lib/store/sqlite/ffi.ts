/**
 * The binding to the system SQLite library: one typed symbols table, opened
 * lazily on first use. This is the only module that calls `Deno.dlopen`;
 * importing it needs no permission.
 *
 * @module
 */
import { granted, readEnv } from "../../_env.ts";

/**
 * The SQLite C functions the FFI driver calls. Hot calls (step, reset,
 * bind, column) are synchronous (`nonblocking: false`) and use only
 * fast-call-compatible types, so V8 can call them without a trampoline.
 * An `i64`/`isize` parameter stays on the fast path only when given a
 * bigint: a number there falls back to the slow call (about 10x slower),
 * hence `sqlite3_bind_int` for values that fit in 32 bits.
 *
 * @experimental The driver seam is not yet a stable API.
 */
export const symbols = {
  sqlite3_open_v2: {
    parameters: [
      "buffer", // const char *filename (UTF-8, NUL-terminated)
      "buffer", // sqlite3 **ppDb (out: 8 bytes)
      "i32", // int flags
      "pointer", // const char *zVfs (NULL: default VFS)
    ],
    result: "i32",
  },
  sqlite3_close_v2: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "i32",
  },
  sqlite3_prepare_v3: {
    parameters: [
      "pointer", // sqlite3 *db
      "buffer", // const char *zSql (UTF-8)
      "i32", // int nByte (length of zSql in bytes)
      "u32", // unsigned int prepFlags
      "buffer", // sqlite3_stmt **ppStmt (out: 8 bytes)
      "pointer", // const char **pzTail (NULL: unused)
    ],
    result: "i32",
  },
  sqlite3_step: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_reset: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_clear_bindings: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_finalize: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
  },
  sqlite3_bind_parameter_count: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
  },
  sqlite3_bind_null: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_int: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "i32", // int value
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_int64: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "i64", // sqlite3_int64 value
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_double: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "f64", // double value
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_text: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "buffer", // const char *value (UTF-8)
      "i32", // int n (bytes; no NUL needed)
      "isize", // void (*)(void *) destructor (-1: SQLITE_TRANSIENT)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_blob: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "buffer", // const void *value
      "i32", // int n (bytes)
      "isize", // void (*)(void *) destructor (-1: SQLITE_TRANSIENT)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_bind_zeroblob: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int i (1-based)
      "i32", // int n (bytes of zeros)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_column_count: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
    ],
    result: "i32",
  },
  sqlite3_column_name: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int N (0-based)
    ],
    result: "pointer", // const char * (owned by the statement)
  },
  sqlite3_column_type: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_column_int64: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "i64", // sqlite3_int64
    nonblocking: false,
  },
  sqlite3_column_double: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "f64",
    nonblocking: false,
  },
  sqlite3_column_text: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "pointer", // const unsigned char * (valid until the next step/reset)
    nonblocking: false,
  },
  sqlite3_column_blob: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "pointer", // const void * (valid until the next step/reset)
    nonblocking: false,
  },
  sqlite3_column_bytes: {
    parameters: [
      "pointer", // sqlite3_stmt *pStmt
      "i32", // int iCol (0-based)
    ],
    result: "i32",
    nonblocking: false,
  },
  sqlite3_changes64: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "i64", // sqlite3_int64
    nonblocking: false,
  },
  sqlite3_last_insert_rowid: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "i64", // sqlite3_int64
    nonblocking: false,
  },
  sqlite3_get_autocommit: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "i32",
  },
  sqlite3_errmsg: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "pointer", // const char * (owned by the connection)
  },
  sqlite3_errstr: {
    parameters: [
      "i32", // int rc
    ],
    result: "pointer", // const char * (static)
  },
  sqlite3_extended_errcode: {
    parameters: [
      "pointer", // sqlite3 *db
    ],
    result: "i32",
  },
  sqlite3_exec: {
    parameters: [
      "pointer", // sqlite3 *db
      "buffer", // const char *sql (UTF-8, NUL-terminated)
      "pointer", // int (*callback)(void *, int, char **, char **) (NULL)
      "pointer", // void *arg (NULL)
      "pointer", // char **errmsg (NULL: read sqlite3_errmsg instead)
    ],
    result: "i32",
  },
  sqlite3_libversion: {
    parameters: [],
    result: "pointer", // const char * (static)
  },
  sqlite3_free: {
    parameters: [
      "pointer", // void *p
    ],
    result: "void",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened SQLite library with its typed symbols. */
export type SqliteLibrary = Deno.DynamicLibrary<typeof symbols>;

/** What {@linkcode acquireSqlite} opened. */
export interface LoadedSqlite {
  /** The opened library. */
  library: SqliteLibrary;
  /** The name or path that `Deno.dlopen` accepted. */
  path: string;
  /** `sqlite3_libversion()`, e.g. `"3.46.1"`. */
  version: string;
}

/** Names tried after `DENO_SQLITE_PATH`, in order. */
export const LIBRARY_NAMES: readonly string[] = [
  "libsqlite3.so.0",
  "libsqlite3.so",
  "libsqlite3.dylib",
  "sqlite3.dll",
];

// The library is open while at least one holder (a database) has acquired
// it, and closed when the last one releases it, so no resource outlives the
// databases that used it. Every connection and statement pointer refers
// into it: a holder releases only after closing its last pointer.
let loaded: LoadedSqlite | undefined;
let holders = 0;
let failure: Error | undefined;

function open(): LoadedSqlite {
  if (loaded !== undefined) return loaded;
  if (failure !== undefined) throw failure;
  const fromEnv = readEnv("DENO_SQLITE_PATH");
  // An explicit path is a requirement, not a hint: no fallback past it.
  const candidates = fromEnv ? [fromEnv] : LIBRARY_NAMES;
  const tried: string[] = [];
  const causes: unknown[] = [];
  // Asked, not tried: on a terminal, a dlopen without --allow-ffi prompts.
  if (!granted({ name: "ffi" })) {
    failure = new Error(
      "Cannot load SQLite: FFI is not allowed (run with --allow-ffi)",
    );
    throw failure;
  }
  for (const path of candidates) {
    let library: SqliteLibrary;
    try {
      library = Deno.dlopen(path, symbols);
    } catch (error) {
      causes.push(error);
      const reason = error instanceof Error ? error.message : String(error);
      tried.push(`${path} (${reason})`);
      // Without --allow-ffi no other name can succeed either.
      if (error instanceof Deno.errors.NotCapable) break;
      if (error instanceof Deno.errors.PermissionDenied) break;
      continue;
    }
    const version = Deno.UnsafePointerView.getCString(
      library.symbols.sqlite3_libversion()!,
    );
    loaded = { library, path, version };
    return loaded;
  }
  failure = new Error(`Cannot load SQLite: tried ${tried.join("; ")}`, {
    cause: causes.length === 1 ? causes[0] : new AggregateError(causes),
  });
  throw failure;
}

/**
 * Opens the system SQLite library (if no holder has it open yet) and
 * registers one more holder. Each successful call must be paired with one
 * {@linkcode releaseSqlite} once the holder's last pointer is closed.
 *
 * Lookup: the `DENO_SQLITE_PATH` environment variable when set and readable
 * (and nothing else), otherwise {@linkcode LIBRARY_NAMES} in order; the first
 * that `Deno.dlopen` accepts wins. A failure is remembered: later calls throw
 * the same error without retrying.
 *
 * @returns The library, the name that loaded and its version.
 * @throws {Error} "Cannot load SQLite: ..." listing every name tried and why it failed.
 *
 * @example Holding the library while using it
 * ```ts
 * import { acquireSqlite, releaseSqlite } from "./ffi.ts";
 * import assert from "node:assert/strict";
 *
 * const { version } = acquireSqlite();
 * try {
 *   assert.match(version, /^3\./);
 * } finally {
 *   releaseSqlite();
 * }
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export function acquireSqlite(): LoadedSqlite {
  const library = open();
  holders++;
  return library;
}

/**
 * Drops one holder registered by {@linkcode acquireSqlite}; closes the
 * library when it was the last.
 *
 * @throws {Error} When called more often than `acquireSqlite` succeeded.
 *
 * @example Releasing after use
 * ```ts
 * import { acquireSqlite, releaseSqlite } from "./ffi.ts";
 * import assert from "node:assert/strict";
 *
 * acquireSqlite();
 * releaseSqlite();
 * assert.throws(() => releaseSqlite(), /no holder/);
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export function releaseSqlite(): void {
  if (holders === 0 || loaded === undefined) {
    throw new Error("Cannot release SQLite: there is no holder");
  }
  holders--;
  if (holders === 0) {
    loaded.library.close();
    loaded = undefined;
  }
}

/**
 * Checks that the system SQLite library loads and reports where from,
 * without keeping it open (unless a database already holds it).
 *
 * @returns The name that loaded and the library version.
 * @throws {Error} "Cannot load SQLite: ..." listing every name tried and why it failed.
 *
 * @example Probing the library
 * ```ts
 * import { probeSqlite } from "./ffi.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(probeSqlite().version, /^3\./);
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export function probeSqlite(): { path: string; version: string } {
  const { path, version } = acquireSqlite();
  releaseSqlite();
  return { path, version };
}
