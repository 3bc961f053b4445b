/**
 * The error both SQLite drivers throw when the library reports a failure.
 *
 * @module
 */

/** The driver step that failed, carried by {@linkcode SqliteError}. */
export type SqliteOperation =
  | "load"
  | "open"
  | "prepare"
  | "bind"
  | "step"
  | "reset"
  | "exec"
  | "close";

/** Structured data carried by a {@linkcode SqliteError}. */
export interface SqliteErrorOptions extends ErrorOptions {
  /** SQLite's extended result code (for example 2067 for a UNIQUE violation). */
  code: number;
  /** The driver step that failed. */
  operation: SqliteOperation;
}

/**
 * A failure reported by SQLite, with the extended result code and the driver
 * step that failed. Both drivers throw it, so callers can match on `code`
 * whichever driver is in use.
 *
 * @example Recognising a UNIQUE violation
 * ```ts
 * import { openDatabase } from "./open_database.ts";
 * import { SqliteError } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * using db = openDatabase(":memory:");
 * db.exec("CREATE TABLE t (k TEXT UNIQUE)");
 * db.prepare("INSERT INTO t (k) VALUES (?)").run("a");
 * assert.throws(
 *   () => db.prepare("INSERT INTO t (k) VALUES (?)").run("a"),
 *   (error: unknown) =>
 *     error instanceof SqliteError && error.code === 2067 &&
 *     error.operation === "step",
 * );
 * ```
 */
export class SqliteError extends Error {
  /** SQLite's extended result code; the primary code is `code & 0xff`. */
  readonly code: number;
  /** The driver step that failed. */
  readonly operation: SqliteOperation;

  /**
   * Creates a SQLite error.
   *
   * @param message What failed, "Cannot <action>: <sqlite3_errmsg>".
   * @param options The extended result code, the failed step and an optional `cause`.
   */
  constructor(message: string, options: SqliteErrorOptions) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "SqliteError";
    this.code = options.code;
    this.operation = options.operation;
  }

  /** SQLite's primary result code (`code & 0xff`), e.g. 19 for any constraint. */
  get primaryCode(): number {
    return this.code & 0xff;
  }
}
