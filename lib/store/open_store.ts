/**
 * Chooses the task store for a `--db` value: PostgreSQL for a
 * `postgres://` or `postgresql://` URL, SQLite for anything else (a file
 * path or `":memory:"`).
 *
 * @experimental The store interface is not yet a stable API.
 * @module
 */
import {
  PostgresTaskStore,
  type PostgresTaskStoreOptions,
} from "./postgres/postgres_store.ts";
import {
  SqliteTaskStore,
  type SqliteTaskStoreOptions,
} from "./sqlite/sqlite_store.ts";
import type { TaskStore } from "./store.ts";

/** Options for {@linkcode openStore}, per kind of store. */
export interface OpenStoreOptions {
  /**
   * Used when `db` is a SQLite path.
   *
   * @default {{}}
   */
  sqlite?: SqliteTaskStoreOptions;
  /**
   * Used when `db` is a PostgreSQL URL.
   *
   * @default {{}}
   */
  postgres?: PostgresTaskStoreOptions;
  /**
   * Open read-only, whichever store `db` names: nothing is created or
   * migrated, and every write method throws. When set, it overrides the
   * `readonly` of `sqlite` and `postgres`.
   *
   * @default {undefined}
   */
  readonly?: boolean;
}

/**
 * Reports whether `db` names a PostgreSQL database rather than a SQLite
 * file.
 *
 * @param db A `--db` value.
 * @returns `true` for a `postgres://` or `postgresql://` URL.
 *
 * @example Telling the two apart
 * ```ts
 * import { isPostgresUrl } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isPostgresUrl("postgres://u@host/db"), true);
 * assert.equal(isPostgresUrl("postgresql://host/db"), true);
 * assert.equal(isPostgresUrl("tasks.db"), false);
 * ```
 */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(db);
}

/**
 * Opens the store `db` names: a {@linkcode PostgresTaskStore} for a
 * `postgres://` or `postgresql://` URL (the client is loaded only then),
 * otherwise a {@linkcode SqliteTaskStore} at that path.
 *
 * @param db A SQLite path, `":memory:"`, or a PostgreSQL URL.
 * @param options Settings for the kind of store chosen.
 * @returns The open store; the caller closes it.
 * @throws {TypeError} When `db` is not a non-empty string or an option has
 *   the wrong type.
 * @throws {RangeError} When an option is out of range.
 * @throws {Error} When the store cannot be opened (see each store's `open`),
 *   or, read-only, holds no Sluice queue.
 *
 * @example Opening SQLite in memory
 * ```ts
 * import { openStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * const store = await openStore(":memory:", { sqlite: { driver: "auto" } });
 * assert.match(store.kind, /^sqlite-/);
 * await store.close();
 * ```
 *
 * @example Opening read-only never creates a queue
 * ```ts
 * import { openStore } from "@sluice/sluice/store";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await assert.rejects(
 *   openStore(`${dir}/tasks.db`, { readonly: true }),
 *   /no Sluice queue/,
 * );
 * await (await openStore(`${dir}/tasks.db`)).close();
 * const reader = await openStore(`${dir}/tasks.db`, { readonly: true });
 * await assert.rejects(reader.recoverExpired(Date.now()), /read-only/);
 * await reader.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openStore(
  db: string,
  options: OpenStoreOptions = {},
): Promise<TaskStore> {
  if (typeof db !== "string" || db === "") {
    throw new TypeError(
      `Cannot open task store: db must be a non-empty string, got ${
        JSON.stringify(db)
      }`,
    );
  }
  const { sqlite = {}, postgres = {}, readonly } = options;
  if (typeof sqlite !== "object" || sqlite === null) {
    throw new TypeError(
      `Cannot open task store: sqlite must be an object, got ${sqlite}`,
    );
  }
  if (typeof postgres !== "object" || postgres === null) {
    throw new TypeError(
      `Cannot open task store: postgres must be an object, got ${postgres}`,
    );
  }
  if (readonly !== undefined && typeof readonly !== "boolean") {
    throw new TypeError(
      `Cannot open task store: readonly must be a boolean, got ${typeof readonly}`,
    );
  }
  if (isPostgresUrl(db)) {
    return await PostgresTaskStore.open(
      db,
      readonly === undefined ? postgres : { ...postgres, readonly },
    );
  }
  return SqliteTaskStore.open(
    db,
    readonly === undefined ? sqlite : { ...sqlite, readonly },
  );
}
