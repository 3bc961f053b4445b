/**
 * The SQLite driver seam: the few operations the task store needs, with two
 * implementations (FFI over the system library, and the runtime's
 * `node:sqlite`).
 *
 * @module
 */

/** A value that can be bound to, or read from, a SQLite statement. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** A row read from a statement, keyed by column name. */
export type Row = Record<string, SqlValue>;

/** What `Statement.run` reports. */
export interface RunResult {
  /** Rows changed by the statement. */
  changes: number;
  /** Rowid of the last inserted row. */
  lastInsertRowid: number | bigint;
}

/** A prepared statement. Parameters are positional (`?`). */
export interface Statement {
  /** Executes the statement, discarding rows. */
  run(...params: SqlValue[]): RunResult;
  /** Executes the statement and returns every row. */
  all(...params: SqlValue[]): Row[];
  /** Executes the statement and returns the first row, if any. */
  get(...params: SqlValue[]): Row | undefined;
}

/** Which implementation is in use. */
export type DriverName = "ffi" | "builtin";

/** An open SQLite database. */
export interface Database extends Disposable {
  /** Which driver opened it. */
  readonly driver: DriverName;
  /** The path it was opened with. */
  readonly path: string;
  /** Runs one or more statements without parameters. */
  exec(sql: string): void;
  /**
   * Returns a prepared statement for `sql`, cached: the same text yields the
   * same statement, finalized when the database closes.
   */
  prepare(sql: string): Statement;
  /** Finalizes every statement and closes the connection. Idempotent. */
  close(): void;
}

/** Options for opening a database. */
export interface OpenDatabaseOptions {
  /**
   * Driver to use; `"auto"` tries FFI first, then the built-in driver.
   * `SLUICE_SQLITE_DRIVER` overrides `"auto"`.
   *
   * @default {"auto"}
   */
  driver?: DriverName | "auto";
  /**
   * Open read-only.
   *
   * @default {false}
   */
  readonly?: boolean;
}
