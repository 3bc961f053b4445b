/**
 * Opening what `--db` names, for every command: a queue through
 * `TaskQueue.open`, a store through `openStore`. Both choose SQLite or
 * PostgreSQL themselves; nothing in the CLI branches on it.
 *
 * @module
 */
import { TaskQueue } from "../queue/task_queue.ts";
import type { TaskQueueOptions } from "../queue/types.ts";
import { isPostgresUrl, openStore } from "../store/open_store.ts";
import type { TaskStore } from "../store/store.ts";
import type { CliConfig, ConfigKey } from "./config.ts";

/** The settings of the commands that only read a database (and `dlq`). */
export const READ_KEYS: readonly ConfigKey[] = [
  "db",
  "pgSchema",
  "sqliteDriver",
];

/** The queue options `--db` and its settings decide. */
type StoreOptions = "db" | "driver" | "synchronous" | "postgres";

/**
 * Opens a queue on `cfg.db` (created and migrated as needed); closing the
 * queue closes its store.
 *
 * @param cfg The configuration.
 * @param options Everything else.
 * @returns The running queue.
 */
export async function openQueue(
  cfg: CliConfig,
  options: Omit<TaskQueueOptions, StoreOptions>,
): Promise<TaskQueue> {
  return await TaskQueue.open({
    ...options,
    db: cfg.db,
    driver: cfg.sqliteDriver,
    synchronous: cfg.synchronous,
    postgres: { schema: cfg.pgSchema },
  });
}

/**
 * Runs `use` with the store `cfg.db` names, then closes the store.
 *
 * - `"read"`: read-only; nothing is created or migrated (a SQLite file is
 *   not written, PostgreSQL is read on one connection with no `LISTEN`).
 * - `"write"`: for administration (`dlq requeue`); the queue must already
 *   exist, so a mistyped `--db` or schema creates nothing.
 *
 * @param cfg The configuration.
 * @param mode What `use` does with it.
 * @param use Works with the store.
 * @returns What `use` returns.
 * @throws {Error} Saying there is no Sluice queue there, when `cfg.db` holds none.
 */
export async function withStore<T>(
  cfg: CliConfig,
  mode: "read" | "write",
  use: (store: TaskStore) => Promise<T>,
): Promise<T> {
  const reader = await openStore(cfg.db, {
    readonly: true,
    postgres: { schema: cfg.pgSchema, max: 1, notify: false },
    sqlite: { driver: cfg.sqliteDriver },
  });
  let store = reader;
  try {
    if (mode === "write") {
      // The read-only open proved the queue is there; now open it for
      // writing. Requeues notify, so running workers take them at once.
      await reader.close();
      store = await openStore(cfg.db, {
        postgres: { schema: cfg.pgSchema, max: 1 },
        sqlite: { driver: cfg.sqliteDriver, synchronous: cfg.synchronous },
      });
    }
    return await use(store);
  } finally {
    await store.close();
  }
}

/**
 * `cfg.db` for output: a URL's password is never printed, and the schema
 * is named.
 *
 * @param cfg The configuration.
 * @returns The description.
 */
export function describeDb(cfg: CliConfig): string {
  if (!isPostgresUrl(cfg.db)) return cfg.db;
  return `${
    cfg.db.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:…@")
  } (schema ${cfg.pgSchema})`;
}
