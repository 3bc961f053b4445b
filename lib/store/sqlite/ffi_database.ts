/**
 * The default SQLite driver: the system library through `Deno.dlopen`
 * (see `ffi.ts`). Every return code passes through one check that throws
 * {@linkcode SqliteError} with the extended code, `sqlite3_errmsg` and the
 * failed step.
 *
 * @module
 */
import type {
  Database,
  DriverName,
  Row,
  RunResult,
  SqlValue,
  Statement,
} from "./database.ts";
import { acquireSqlite, releaseSqlite, type SqliteLibrary } from "./ffi.ts";
import { SqliteError, type SqliteOperation } from "./sqlite_error.ts";

type Symbols = SqliteLibrary["symbols"];

const SQLITE_OK = 0;
const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
const SQLITE_OPEN_READONLY = 0x01;
const SQLITE_OPEN_READWRITE = 0x02;
const SQLITE_OPEN_CREATE = 0x04;
const SQLITE_OPEN_URI = 0x40;
// One connection is used by one thread: SQLite's own mutexes are redundant.
const SQLITE_OPEN_NOMUTEX = 0x8000;
const SQLITE_PREPARE_PERSISTENT = 0x01;
// SQLite copies the value before bind returns, so the scratch buffer may be
// reused for the next parameter.
// A bigint, not -1: a number in an isize parameter leaves the fast call path.
const SQLITE_TRANSIENT = -1n;

const MAX_I64 = (1n << 63n) - 1n;
const MIN_I64 = -(1n << 63n);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

const encoder = new TextEncoder();

/** Shared per-process: scratch for UTF-8 text going into `bind_text`. */
let scratch = new Uint8Array(4096);

/**
 * Writes `text` as UTF-8 into `scratch` and returns the byte length. Short
 * ASCII strings (keys, statuses, small JSON) are copied in a JS loop, which
 * is several times cheaper than a `TextEncoder.encodeInto` call.
 */
function encodeScratch(text: string): number {
  const length = text.length;
  // encodeInto writes at most 3 bytes per UTF-16 unit.
  if (length * 3 > scratch.length) {
    scratch = new Uint8Array(Math.max(length * 3, scratch.length * 2));
  }
  if (length <= 256) {
    const out = scratch;
    let i = 0;
    for (; i < length; i++) {
      const unit = text.charCodeAt(i);
      if (unit > 0x7f) break;
      out[i] = unit;
    }
    if (i === length) return length;
  }
  return encoder.encodeInto(text, scratch).written;
}

function cString(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

/**
 * The connection a database and its statements share. `handle` is null once
 * closed; statements check it before touching their own pointer, so no
 * statement pointer is used after its connection is gone.
 */
interface Connection {
  symbols: Symbols;
  handle: Deno.PointerObject | null;
  path: string;
}

/**
 * The single check every SQLite return code passes through: `rc` is fine
 * when it is OK, ROW or DONE; otherwise throws with the connection's
 * extended code and message.
 */
function check(
  connection: Connection,
  rc: number,
  operation: SqliteOperation,
  action: string,
): void {
  if (rc === SQLITE_OK || rc === SQLITE_ROW || rc === SQLITE_DONE) return;
  throw errorFor(connection.symbols, connection.handle, rc, operation, action);
}

function errorFor(
  symbols: Symbols,
  handle: Deno.PointerObject | null,
  rc: number,
  operation: SqliteOperation,
  action: string,
): SqliteError {
  let code = rc;
  let message: string;
  if (handle !== null) {
    code = symbols.sqlite3_extended_errcode(handle);
    // The connection's last error is authoritative only when it matches rc.
    if ((code & 0xff) !== (rc & 0xff)) code = rc;
    message = Deno.UnsafePointerView.getCString(
      symbols.sqlite3_errmsg(handle)!,
    );
  } else {
    const text = symbols.sqlite3_errstr(rc);
    message = text === null
      ? `result code ${rc}`
      : Deno.UnsafePointerView.getCString(text);
  }
  return new SqliteError(`Cannot ${action}: ${message}`, { code, operation });
}

function closedError(connection: Connection, action: string): Error {
  return new Error(
    `Cannot ${action}: database "${connection.path}" is closed`,
  );
}

function toValue(value: number | bigint): number | bigint {
  return typeof value === "bigint" && value <= MAX_SAFE && value >= MIN_SAFE
    ? Number(value)
    : value;
}

/**
 * A statement prepared by {@linkcode FfiDatabase.prepare}. Owned by its
 * database, which finalizes it on close. Between calls the statement is
 * always reset, so it holds no read lock and no transaction open.
 */
class FfiStatement implements Statement {
  #connection: Connection;
  #symbols: Symbols;
  #handle: Deno.PointerObject;
  #paramCount: number;
  #names: string[];

  constructor(connection: Connection, handle: Deno.PointerObject) {
    this.#connection = connection;
    this.#symbols = connection.symbols;
    this.#handle = handle;
    this.#paramCount = this.#symbols.sqlite3_bind_parameter_count(handle);
    this.#names = this.#readNames();
  }

  #readNames(): string[] {
    const count = this.#symbols.sqlite3_column_count(this.#handle);
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = this.#symbols.sqlite3_column_name(this.#handle, i);
      names.push(
        name === null ? `column${i}` : Deno.UnsafePointerView.getCString(name),
      );
    }
    return names;
  }

  /** Finalizes the statement; called by the owning database only. */
  finalize(): void {
    this.#symbols.sqlite3_finalize(this.#handle);
  }

  #bind(params: SqlValue[], action: string): void {
    if (this.#connection.handle === null) {
      throw closedError(this.#connection, action);
    }
    const symbols = this.#symbols;
    const handle = this.#handle;
    const count = params.length;
    if (count < this.#paramCount) symbols.sqlite3_clear_bindings(handle);
    for (let i = 0; i < count; i++) {
      const value = params[i] as unknown;
      const index = i + 1;
      let rc: number;
      switch (typeof value) {
        case "number":
          // bind_int takes a number on the fast path; bind_int64 needs a
          // bigint there, which costs an allocation.
          rc = (value | 0) === value
            ? symbols.sqlite3_bind_int(handle, index, value)
            : Number.isSafeInteger(value)
            ? symbols.sqlite3_bind_int64(handle, index, BigInt(value))
            : symbols.sqlite3_bind_double(handle, index, value);
          break;
        case "string": {
          const length = encodeScratch(value);
          rc = symbols.sqlite3_bind_text(
            handle,
            index,
            scratch,
            length,
            SQLITE_TRANSIENT,
          );
          break;
        }
        case "bigint":
          if (value > MAX_I64 || value < MIN_I64) {
            throw new RangeError(
              `Cannot bind parameter ${index}: bigint ${value} is outside the signed 64-bit range`,
            );
          }
          rc = symbols.sqlite3_bind_int64(handle, index, value);
          break;
        case "boolean":
          rc = symbols.sqlite3_bind_int(handle, index, value ? 1 : 0);
          break;
        case "object":
          if (value === null) {
            rc = symbols.sqlite3_bind_null(handle, index);
            break;
          }
          if (value instanceof Uint8Array) {
            // A NULL pointer would bind SQL NULL: empty blobs go as zeroblob.
            rc = value.byteLength === 0
              ? symbols.sqlite3_bind_zeroblob(handle, index, 0)
              : symbols.sqlite3_bind_blob(
                handle,
                index,
                value,
                value.byteLength,
                SQLITE_TRANSIENT,
              );
            break;
          }
          // falls through
        default:
          throw new TypeError(
            `Cannot bind parameter ${index}: unsupported value of type ${
              value === null ? "null" : typeof value
            }`,
          );
      }
      if (rc !== SQLITE_OK) {
        check(this.#connection, rc, "bind", `bind parameter ${index}`);
      }
    }
  }

  #fail(rc: number, action: string): never {
    // Read the error before reset, which may overwrite it.
    const error = errorFor(
      this.#symbols,
      this.#connection.handle,
      rc,
      "step",
      action,
    );
    this.#symbols.sqlite3_reset(this.#handle);
    throw error;
  }

  #readRow(): Row {
    const symbols = this.#symbols;
    const handle = this.#handle;
    let names = this.#names;
    // SQLite re-prepares after a schema change; `SELECT *` may then widen.
    if (symbols.sqlite3_column_count(handle) !== names.length) {
      names = this.#names = this.#readNames();
    }
    const row: Row = {};
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      switch (symbols.sqlite3_column_type(handle, i)) {
        case SQLITE_INTEGER:
          row[name] = toValue(symbols.sqlite3_column_int64(handle, i));
          break;
        case SQLITE_FLOAT:
          row[name] = symbols.sqlite3_column_double(handle, i);
          break;
        case SQLITE_TEXT: {
          const text = symbols.sqlite3_column_text(handle, i);
          row[name] = text === null
            ? ""
            : Deno.UnsafePointerView.getCString(text);
          break;
        }
        case SQLITE_BLOB: {
          const blob = symbols.sqlite3_column_blob(handle, i);
          const length = symbols.sqlite3_column_bytes(handle, i);
          const copy = new Uint8Array(length);
          if (blob !== null && length > 0) {
            Deno.UnsafePointerView.copyInto(blob, copy);
          }
          row[name] = copy;
          break;
        }
        default:
          row[name] = null;
      }
    }
    return row;
  }

  run(...params: SqlValue[]): RunResult {
    this.#bind(params, "run statement");
    const symbols = this.#symbols;
    const handle = this.#handle;
    let rc = symbols.sqlite3_step(handle);
    while (rc === SQLITE_ROW) rc = symbols.sqlite3_step(handle);
    if (rc !== SQLITE_DONE) this.#fail(rc, "run statement");
    const db = this.#connection.handle!;
    const result: RunResult = {
      changes: Number(symbols.sqlite3_changes64(db)),
      lastInsertRowid: toValue(symbols.sqlite3_last_insert_rowid(db)),
    };
    symbols.sqlite3_reset(handle);
    return result;
  }

  all(...params: SqlValue[]): Row[] {
    this.#bind(params, "read rows");
    const symbols = this.#symbols;
    const handle = this.#handle;
    const rows: Row[] = [];
    let rc: number;
    while ((rc = symbols.sqlite3_step(handle)) === SQLITE_ROW) {
      rows.push(this.#readRow());
    }
    if (rc !== SQLITE_DONE) this.#fail(rc, "read rows");
    symbols.sqlite3_reset(handle);
    return rows;
  }

  get(...params: SqlValue[]): Row | undefined {
    this.#bind(params, "read row");
    const symbols = this.#symbols;
    const handle = this.#handle;
    const rc = symbols.sqlite3_step(handle);
    if (rc === SQLITE_ROW) {
      const row = this.#readRow();
      symbols.sqlite3_reset(handle);
      return row;
    }
    if (rc !== SQLITE_DONE) this.#fail(rc, "read row");
    symbols.sqlite3_reset(handle);
    return undefined;
  }
}

/**
 * A {@linkcode Database} over the system SQLite library through FFI. Prefer
 * `openDatabase`, which picks a driver and validates the file. Needs
 * `--allow-ffi` (and `--allow-read`/`--allow-write` for file databases).
 *
 * @example Using the FFI driver directly
 * ```ts
 * import { FfiDatabase } from "./ffi_database.ts";
 * import assert from "node:assert/strict";
 *
 * using db = new FfiDatabase(":memory:");
 * assert.equal(db.driver, "ffi");
 * assert.equal(db.prepare("SELECT 2 + 2 AS four").get()?.four, 4);
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export class FfiDatabase implements Database {
  /** Always `"ffi"`. */
  readonly driver: DriverName = "ffi";
  /** The path the database was opened with. */
  readonly path: string;
  #connection: Connection;
  #statements = new Map<string, FfiStatement>();
  #out = new BigUint64Array(1);

  /**
   * Opens `path` (created unless `readonly`) and reads its header, so a file
   * that is not a database fails here rather than on first use.
   *
   * @param path A file path, or `":memory:"`.
   * @param readonly Open read-only.
   * @throws {Error} When the system library cannot be loaded.
   * @throws {SqliteError} When the file cannot be opened or is not a database.
   */
  constructor(path: string, readonly = false) {
    this.path = path;
    const symbols = acquireSqlite().library.symbols;
    try {
      this.#connection = FfiDatabase.#open(symbols, path, readonly, this.#out);
    } catch (error) {
      releaseSqlite();
      throw error;
    }
  }

  static #open(
    symbols: Symbols,
    path: string,
    readonly: boolean,
    out: BigUint64Array,
  ): Connection {
    const flags =
      (readonly
        ? SQLITE_OPEN_READONLY
        : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    out[0] = 0n;
    const rc = symbols.sqlite3_open_v2(
      cString(path),
      new Uint8Array(out.buffer),
      flags,
      null,
    );
    const handle = Deno.UnsafePointer.create(out[0]);
    const action = `open database "${path}"`;
    if (rc !== SQLITE_OK) {
      const error = errorFor(symbols, handle, rc, "open", action);
      if (handle !== null) symbols.sqlite3_close_v2(handle);
      throw error;
    }
    const connection: Connection = { symbols, handle, path };
    // Reads page 1: a file that is not a database fails now.
    const probe = symbols.sqlite3_exec(
      handle!,
      cString("PRAGMA schema_version"),
      null,
      null,
      null,
    );
    if (probe !== SQLITE_OK) {
      const error = errorFor(symbols, handle, probe, "open", action);
      symbols.sqlite3_close_v2(handle);
      throw error;
    }
    return connection;
  }

  #exec(sql: string, operation: SqliteOperation, action: string): void {
    const connection = this.#connection;
    const handle = connection.handle;
    if (handle === null) throw closedError(connection, action);
    const rc = connection.symbols.sqlite3_exec(
      handle,
      cString(sql),
      null,
      null,
      null,
    );
    check(connection, rc, operation, action);
  }

  /** Whether a transaction is open (SQLite is not in autocommit mode). */
  get inTransaction(): boolean {
    const connection = this.#connection;
    if (connection.handle === null) {
      throw closedError(connection, "read transaction state");
    }
    return connection.symbols.sqlite3_get_autocommit(connection.handle) === 0;
  }

  /**
   * Runs one or more statements without parameters.
   *
   * @param sql SQL text; several statements may be separated by `;`.
   * @throws {SqliteError} With operation `"exec"` when a statement fails.
   */
  exec(sql: string): void {
    this.#exec(sql, "exec", "execute SQL");
  }

  /**
   * Returns the cached statement for `sql`, preparing it on first use.
   *
   * @param sql One SQL statement with positional `?` parameters.
   * @returns The same statement object for the same text.
   * @throws {SqliteError} With operation `"prepare"` when the SQL is invalid.
   */
  prepare(sql: string): Statement {
    const connection = this.#connection;
    const handle = connection.handle;
    if (handle === null) throw closedError(connection, "prepare statement");
    const cached = this.#statements.get(sql);
    if (cached !== undefined) return cached;
    const bytes = encoder.encode(sql);
    const out = this.#out;
    out[0] = 0n;
    const rc = connection.symbols.sqlite3_prepare_v3(
      handle,
      bytes,
      bytes.byteLength,
      SQLITE_PREPARE_PERSISTENT,
      new Uint8Array(out.buffer),
      null,
    );
    check(connection, rc, "prepare", "prepare statement");
    const statementHandle = Deno.UnsafePointer.create(out[0]);
    if (statementHandle === null) {
      throw new SqliteError(
        "Cannot prepare statement: the SQL text holds no statement",
        { code: 21, operation: "prepare" },
      );
    }
    const statement = new FfiStatement(connection, statementHandle);
    this.#statements.set(sql, statement);
    return statement;
  }

  /** Finalizes every cached statement and closes the connection. Idempotent. */
  close(): void {
    const connection = this.#connection;
    const handle = connection.handle;
    if (handle === null) return;
    for (const statement of this.#statements.values()) statement.finalize();
    this.#statements.clear();
    connection.handle = null;
    const rc = connection.symbols.sqlite3_close_v2(handle);
    // close_v2 leaves nothing behind even on failure: the library may go.
    releaseSqlite();
    if (rc !== SQLITE_OK) {
      throw errorFor(
        connection.symbols,
        null,
        rc,
        "close",
        `close database "${this.path}"`,
      );
    }
  }

  /** Closes the database; see {@linkcode FfiDatabase.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
