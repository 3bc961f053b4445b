/**
 * The fallback SQLite driver, over the runtime's `node:sqlite`. Same
 * semantics as the FFI driver: statements cached by SQL text and finalized on
 * close, 64-bit integers read as `number` when safe and `bigint` otherwise,
 * failures thrown as {@linkcode SqliteError}.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type {
  Database,
  DriverName,
  Row,
  RunResult,
  SqlValue,
  Statement,
} from "./database.ts";
import { SqliteError, type SqliteOperation } from "./sqlite_error.ts";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_I64 = (1n << 63n) - 1n;
const MIN_I64 = -(1n << 63n);

/**
 * Extended codes for failures `node:sqlite` reports without `errcode`
 * (`exec` and `open` do not carry it). Matched on the message start.
 */
const CODE_BY_MESSAGE: ReadonlyArray<readonly [string, number]> = [
  ["UNIQUE constraint failed", 2067],
  ["NOT NULL constraint failed", 1299],
  ["CHECK constraint failed", 275],
  ["FOREIGN KEY constraint failed", 787],
  ["PRIMARY KEY constraint failed", 1555],
  ["database is locked", 5],
  ["unable to open database file", 14],
  ["file is not a database", 26],
  ["database disk image is malformed", 11],
  ["attempt to write a readonly database", 8],
];

/** Converts a `node:sqlite` failure into a {@linkcode SqliteError}. */
function wrap(
  error: unknown,
  operation: SqliteOperation,
  action: string,
  path?: string,
): Error {
  if (error instanceof SqliteError) return error;
  if (!(error instanceof Error)) {
    return new SqliteError(`Cannot ${action}: ${String(error)}`, {
      code: 1,
      operation,
      cause: error,
    });
  }
  const record = error as Error & { errcode?: unknown; code?: unknown };
  if (record.code !== "ERR_SQLITE_ERROR") return error;
  let code = typeof record.errcode === "number" ? record.errcode : 0;
  if (code === 0) {
    code = 1;
    for (const [prefix, known] of CODE_BY_MESSAGE) {
      if (error.message.startsWith(prefix)) {
        code = known;
        break;
      }
    }
  }
  let message = error.message;
  // `node:sqlite` appends the path to open failures; the action names it.
  if (path !== undefined && message.endsWith(`: ${path}`)) {
    message = message.slice(0, -(path.length + 2));
  }
  return new SqliteError(`Cannot ${action}: ${message}`, {
    code,
    operation,
    cause: error,
  });
}

/** Turns a bigint read from SQLite into a number when that is exact. */
function normalizeRow(row: Record<string, unknown>): Row {
  for (const key in row) {
    const value = row[key];
    if (
      typeof value === "bigint" && value <= MAX_SAFE && value >= MIN_SAFE
    ) {
      row[key] = Number(value);
    }
  }
  return row as Row;
}

/**
 * Checks parameters, copying the array only when a value has to change:
 * booleans become 0/1, and integral numbers become bigint, because
 * `node:sqlite` binds every number as REAL while SQLite (and the FFI driver)
 * store an integer as INTEGER.
 */
function checkParams(params: unknown[]): SqlValue[] {
  let out: unknown[] = params;
  for (let i = 0; i < params.length; i++) {
    const value = params[i];
    switch (typeof value) {
      case "number":
        if (Number.isSafeInteger(value)) {
          if (out === params) out = params.slice();
          out[i] = BigInt(value);
        }
        continue;
      case "string":
        continue;
      case "bigint":
        if (value > MAX_I64 || value < MIN_I64) {
          throw new RangeError(
            `Cannot bind parameter ${
              i + 1
            }: bigint ${value} is outside the signed 64-bit range`,
          );
        }
        continue;
      case "boolean":
        if (out === params) out = params.slice();
        out[i] = value ? 1 : 0;
        continue;
      case "object":
        if (value === null || value instanceof Uint8Array) continue;
    }
    throw new TypeError(
      `Cannot bind parameter ${i + 1}: unsupported value of type ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  return out as SqlValue[];
}

/** Shared open/closed state of a connection and its statements. */
interface Connection {
  db: DatabaseSync | null;
  path: string;
}

function assertOpen(connection: Connection, action: string): DatabaseSync {
  const db = connection.db;
  if (db === null) {
    throw new Error(
      `Cannot ${action}: database "${connection.path}" is closed`,
    );
  }
  return db;
}

/**
 * A statement prepared by {@linkcode NodeSqliteDatabase.prepare}. Owned by its
 * database: it stays valid until the database closes.
 */
class NodeStatement implements Statement {
  #statement: StatementSync;
  #connection: Connection;

  constructor(statement: StatementSync, connection: Connection) {
    this.#statement = statement;
    this.#connection = connection;
  }

  run(...params: SqlValue[]): RunResult {
    assertOpen(this.#connection, "run statement");
    let result;
    try {
      result = this.#statement.run(...checkParams(params));
    } catch (error) {
      throw wrap(error, "step", "run statement");
    }
    const rowid = result.lastInsertRowid;
    return {
      changes: Number(result.changes),
      lastInsertRowid:
        typeof rowid === "bigint" && rowid <= MAX_SAFE && rowid >= MIN_SAFE
          ? Number(rowid)
          : rowid,
    };
  }

  all(...params: SqlValue[]): Row[] {
    assertOpen(this.#connection, "read rows");
    let rows;
    try {
      rows = this.#statement.all(...checkParams(params));
    } catch (error) {
      throw wrap(error, "step", "read rows");
    }
    for (const row of rows) normalizeRow(row as Record<string, unknown>);
    return rows as Row[];
  }

  get(...params: SqlValue[]): Row | undefined {
    assertOpen(this.#connection, "read row");
    let row;
    try {
      row = this.#statement.get(...checkParams(params));
    } catch (error) {
      throw wrap(error, "step", "read row");
    }
    return row === undefined
      ? undefined
      : normalizeRow(row as Record<string, unknown>);
  }
}

/**
 * A {@linkcode Database} over `node:sqlite`'s `DatabaseSync`. Prefer
 * `openDatabase`, which picks a driver and validates the file.
 *
 * @example Using the built-in driver directly
 * ```ts
 * import { NodeSqliteDatabase } from "./node_database.ts";
 * import assert from "node:assert/strict";
 *
 * using db = new NodeSqliteDatabase(":memory:");
 * assert.equal(db.driver, "builtin");
 * assert.equal(db.prepare("SELECT 2 + 2 AS four").get()?.four, 4);
 * ```
 * @experimental The driver seam is not yet a stable API.
 */
export class NodeSqliteDatabase implements Database {
  /** Always `"builtin"`. */
  readonly driver: DriverName = "builtin";
  /** The path the database was opened with. */
  readonly path: string;
  #connection: Connection;
  #statements = new Map<string, NodeStatement>();

  /**
   * Opens `path` (created unless `readonly`) and reads its header, so a file
   * that is not a database fails here rather than on first use.
   *
   * @param path A file path, or `":memory:"`.
   * @param readonly Open read-only.
   * @throws {SqliteError} When the file cannot be opened or is not a database.
   */
  constructor(path: string, readonly = false) {
    this.path = path;
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { readOnly: readonly });
    } catch (error) {
      throw wrap(error, "open", `open database "${path}"`, path);
    }
    try {
      db.prepare("PRAGMA schema_version").get();
    } catch (error) {
      db.close();
      throw wrap(error, "open", `open database "${path}"`);
    }
    this.#connection = { db, path };
  }

  /** Whether a transaction is open (SQLite is not in autocommit mode). */
  get inTransaction(): boolean {
    return assertOpen(this.#connection, "read transaction state")
      .isTransaction;
  }

  /**
   * Runs one or more statements without parameters.
   *
   * @param sql SQL text; several statements may be separated by `;`.
   * @throws {SqliteError} With operation `"exec"` when a statement fails.
   */
  exec(sql: string): void {
    const db = assertOpen(this.#connection, "execute SQL");
    try {
      db.exec(sql);
    } catch (error) {
      throw wrap(error, "exec", "execute SQL");
    }
  }

  /**
   * Returns the cached statement for `sql`, preparing it on first use.
   *
   * @param sql One SQL statement with positional `?` parameters.
   * @returns The same statement object for the same text.
   * @throws {SqliteError} With operation `"prepare"` when the SQL is invalid.
   */
  prepare(sql: string): Statement {
    const cached = this.#statements.get(sql);
    if (cached !== undefined) {
      assertOpen(this.#connection, "prepare statement");
      return cached;
    }
    const db = assertOpen(this.#connection, "prepare statement");
    let statement: StatementSync;
    try {
      statement = db.prepare(sql);
    } catch (error) {
      throw wrap(error, "prepare", "prepare statement");
    }
    statement.setReadBigInts(true);
    const wrapped = new NodeStatement(statement, this.#connection);
    this.#statements.set(sql, wrapped);
    return wrapped;
  }

  /** Finalizes every cached statement and closes the connection. Idempotent. */
  close(): void {
    const db = this.#connection.db;
    if (db === null) return;
    this.#connection.db = null;
    this.#statements.clear();
    try {
      db.close();
    } catch (error) {
      throw wrap(error, "close", `close database "${this.path}"`);
    }
  }

  /** Closes the database; see {@linkcode NodeSqliteDatabase.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
