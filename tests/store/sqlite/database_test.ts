import assert from "node:assert/strict";
import type {
  Database,
  DriverName,
} from "../../../lib/store/sqlite/database.ts";
import {
  openDatabase,
  sqliteDriverInfo,
} from "../../../lib/store/sqlite/open_database.ts";
import { SqliteError } from "../../../lib/store/sqlite/sqlite_error.ts";
import { tempDir } from "../../_helpers.ts";

const DRIVERS: readonly DriverName[] = ["ffi", "builtin"];
const MOD_URL = new URL("../../../mod.ts", import.meta.url).href;
const OPEN_URL = new URL(
  "../../../lib/store/sqlite/open_database.ts",
  import.meta.url,
).href;
const FFI_URL =
  new URL("../../../lib/store/sqlite/ffi.ts", import.meta.url).href;

function isSqliteError(
  code: number,
  operation: string,
): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SqliteError, `not a SqliteError: ${error}`);
    assert.equal(error.name, "SqliteError");
    assert.equal(error.code, code);
    assert.equal(error.operation, operation);
    return true;
  };
}

/** Runs `source` as a module in a child Deno with `flags` and `env`. */
async function runScript(
  source: string,
  flags: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using dir = await tempDir();
  const script = `${dir.path}/script.ts`;
  await Deno.writeTextFile(script, source);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", ...flags, script],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function createTable(db: Database): void {
  db.exec(
    "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v ANY) STRICT",
  );
}

for (const driver of DRIVERS) {
  Deno.test(`openDatabase() uses the ${driver} driver when asked`, () => {
    using db = openDatabase(":memory:", { driver });
    assert.equal(db.driver, driver);
    assert.equal(db.path, ":memory:");
  });

  Deno.test(`Statement.get() round-trips every value type with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    const now = Date.now();
    const cases: [string, unknown, unknown][] = [
      ["null", null, null],
      ["integer", 42, 42],
      ["negative", -7, -7],
      ["zero", 0, 0],
      ["max safe", Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      ["2^53+1", 2n ** 53n + 1n, 2n ** 53n + 1n],
      ["min i64", -(2n ** 63n), -(2n ** 63n)],
      ["safe bigint", 5n, 5],
      ["epoch ms", now, now],
      ["float", 3.25, 3.25],
      ["unsafe float", 2 ** 60, 2 ** 60],
      ["unicode", "héllo wörld ✓ 🐍 日本", "héllo wörld ✓ 🐍 日本"],
      ["injection", "'; DROP TABLE t; --", "'; DROP TABLE t; --"],
      ["quotes", `"a" 'b' \`c\``, `"a" 'b' \`c\``],
      ["empty string", "", ""],
      ["long string", "x".repeat(20_000), "x".repeat(20_000)],
      ["blob", new Uint8Array([0, 1, 2, 255]), new Uint8Array([0, 1, 2, 255])],
      ["empty blob", new Uint8Array(0), new Uint8Array(0)],
      ["true", true, 1],
      ["false", false, 0],
    ];
    const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    const select = db.prepare("SELECT v, typeof(v) AS type FROM t WHERE k = ?");
    for (const [key, input, expected] of cases) {
      insert.run(key, input as never);
      const row = select.get(key);
      assert.ok(row !== undefined, key);
      assert.deepEqual(row.v, expected, key);
    }
    assert.equal(select.get("float")?.type, "real");
    assert.equal(select.get("epoch ms")?.type, "integer");
    assert.equal(select.get("empty blob")?.type, "blob");
    assert.equal(select.get("empty string")?.type, "text");
    assert.equal(select.get("null")?.type, "null");
    const count = db.prepare("SELECT count(*) AS n FROM t").get();
    assert.equal(count?.n, cases.length);
  });

  Deno.test(`Statement.all() returns every row in order with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    for (let i = 0; i < 5; i++) insert.run(`k${i}`, i * 10);
    const rows = db.prepare("SELECT k, v FROM t WHERE v >= ? ORDER BY id")
      .all(20);
    assert.deepEqual(rows.map((row) => ({ ...row })), [
      { k: "k2", v: 20 },
      { k: "k3", v: 30 },
      { k: "k4", v: 40 },
    ]);
    assert.deepEqual(db.prepare("SELECT k FROM t WHERE v < 0").all(), []);
    assert.equal(db.prepare("SELECT k FROM t WHERE v < 0").get(), undefined);
  });

  Deno.test(`Database.prepare() returns the same statement when the SQL repeats with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    const a = db.prepare("SELECT 1 AS one");
    const b = db.prepare("SELECT 1 AS one");
    const c = db.prepare("SELECT 2 AS two");
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.equal(b.get()?.one, 1);
  });

  Deno.test(`Statement.run() reports changes and lastInsertRowid with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    assert.deepEqual(insert.run("a", 1), { changes: 1, lastInsertRowid: 1 });
    assert.deepEqual(insert.run("b", 2), { changes: 1, lastInsertRowid: 2 });
    const update = db.prepare("UPDATE t SET v = v + 1 WHERE v >= ?");
    assert.equal(update.run(0).changes, 2);
    assert.equal(update.run(100).changes, 0);
    const big = db.prepare("INSERT INTO t (id, k) VALUES (?, ?)")
      .run(2n ** 60n, "c");
    assert.equal(big.lastInsertRowid, 2n ** 60n);
    const returning = db.prepare(
      "UPDATE t SET v = 9 WHERE k = ? RETURNING id",
    );
    assert.equal(returning.run("a").changes, 1);
    assert.equal(db.prepare("SELECT v FROM t WHERE k = 'a'").get()?.v, 9);
  });

  Deno.test(`Statement.run() throws SqliteError 2067 when a UNIQUE key repeats with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    insert.run("dup", 1);
    assert.throws(() => insert.run("dup", 2), isSqliteError(2067, "step"));
    assert.throws(() => insert.run("dup", 2), /UNIQUE constraint failed/);
    // The statement is usable again after the failure.
    assert.equal(insert.run("other", 3).changes, 1);
    assert.equal(db.prepare("SELECT count(*) AS n FROM t").get()?.n, 2);
  });

  Deno.test(`Database.prepare() throws SqliteError when the SQL is invalid with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    assert.throws(() => db.prepare("SELEC 1"), isSqliteError(1, "prepare"));
    assert.throws(() => db.prepare("SELEC 1"), /syntax error/);
    assert.throws(
      () => db.prepare("SELECT * FROM missing"),
      /no such table: missing/,
    );
  });

  Deno.test(`Database.exec() throws SqliteError when a statement fails with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    assert.throws(() => db.exec("SELEC 1"), isSqliteError(1, "exec"));
    assert.throws(
      () =>
        db.exec(
          "INSERT INTO t (k) VALUES ('x'); INSERT INTO t (k) VALUES ('x')",
        ),
      isSqliteError(2067, "exec"),
    );
  });

  Deno.test(`Statement.run() rejects unbindable values when given them with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    const select = db.prepare("SELECT ? AS a, ? AS b");
    assert.throws(
      () => select.get(1, {} as never),
      new TypeError(
        "Cannot bind parameter 2: unsupported value of type object",
      ),
    );
    assert.throws(
      () => select.get(undefined as never, 1),
      /Cannot bind parameter 1: unsupported value of type undefined/,
    );
    assert.throws(() => select.get(1, 2n ** 63n), RangeError);
    assert.throws(() => select.get(-(2n ** 63n) - 1n, 1), RangeError);
    assert.deepEqual({ ...select.get(1, 2) }, { a: 1, b: 2 });
  });

  Deno.test(`Database.exec() commits and rolls back transactions with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    createTable(db);
    const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    const count = db.prepare("SELECT count(*) AS n FROM t");
    db.exec("BEGIN IMMEDIATE");
    insert.run("a", 1);
    insert.run("b", 2);
    db.exec("ROLLBACK");
    assert.equal(count.get()?.n, 0);
    db.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < 100; i++) insert.run(`k${i}`, i);
    db.exec("COMMIT");
    assert.equal(count.get()?.n, 100);
    db.exec("BEGIN IMMEDIATE");
    assert.throws(() => db.exec("BEGIN IMMEDIATE"), isSqliteError(1, "exec"));
    db.exec("ROLLBACK");
  });

  Deno.test(`Database.close() finalizes statements and is idempotent with the ${driver} driver`, () => {
    const db = openDatabase(":memory:", { driver });
    const statement = db.prepare("SELECT 1 AS one");
    for (let i = 0; i < 200; i++) db.prepare(`SELECT ${i} AS n`).get();
    db.close();
    db.close();
    db[Symbol.dispose]();
    assert.throws(
      () => statement.get(),
      /Cannot read row: database ":memory:" is closed/,
    );
    assert.throws(() => db.prepare("SELECT 1 AS one"), /is closed/);
    assert.throws(() => db.exec("SELECT 1"), /is closed/);
  });

  Deno.test(`openDatabase() keeps data across reopen when the path is a file with the ${driver} driver`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/data.db`;
    {
      using db = openDatabase(path, { driver });
      createTable(db);
      db.prepare("INSERT INTO t (k, v) VALUES (?, ?)").run("kept", 1);
    }
    {
      using db = openDatabase(path, { driver, readonly: true });
      assert.equal(db.prepare("SELECT v FROM t WHERE k = ?").get("kept")?.v, 1);
      assert.throws(
        () => db.exec("INSERT INTO t (k, v) VALUES ('no', 2)"),
        isSqliteError(8, "exec"),
      );
    }
  });

  Deno.test(`openDatabase() throws SqliteError when the file is not a database with the ${driver} driver`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/corrupt.db`;
    const noise = crypto.getRandomValues(new Uint8Array(8192));
    await Deno.writeFile(path, noise);
    assert.throws(() => openDatabase(path, { driver }), (error: unknown) => {
      isSqliteError(26, "open")(error);
      assert.ok(error instanceof Error);
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /file is not a database/);
      return true;
    });
  });

  Deno.test(`openDatabase() throws SqliteError when the path cannot be created with the ${driver} driver`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/missing/dir/data.db`;
    assert.throws(() => openDatabase(path, { driver }), (error: unknown) => {
      isSqliteError(14, "open")(error);
      assert.ok(error instanceof Error);
      assert.equal(
        error.message,
        `Cannot open database "${path}": unable to open database file`,
      );
      return true;
    });
    assert.throws(
      () => openDatabase(`${dir.path}/absent.db`, { driver, readonly: true }),
      isSqliteError(14, "open"),
    );
  });
}

Deno.test("openDatabase() throws TypeError when an option is invalid", () => {
  assert.throws(
    () => openDatabase(":memory:", { driver: "postgres" as never }),
    new TypeError(
      'Cannot open database: options.driver must be "auto", "ffi" or "builtin", got "postgres"',
    ),
  );
  assert.throws(
    () => openDatabase(":memory:", { readonly: "yes" as never }),
    /options\.readonly must be a boolean, got "yes"/,
  );
  assert.throws(() => openDatabase(""), TypeError);
});

Deno.test("sqliteDriverInfo() reports the FFI driver when the system library loads", () => {
  const info = sqliteDriverInfo();
  assert.equal(info.driver, "ffi");
  assert.equal(info.library, "libsqlite3.so.0");
  assert.match(info.version, /^3\.\d+\.\d+$/);
  assert.match(info.reason, /libsqlite3\.so\.0 loaded/);
});

Deno.test("probeSqlite() throws a clear error when DENO_SQLITE_PATH is bogus", async () => {
  await using dir = await tempDir();
  const bogus = `${dir.path}/not-sqlite.so`;
  await Deno.writeTextFile(bogus, "not a shared library");
  const result = await runScript(
    `import { probeSqlite } from ${JSON.stringify(FFI_URL)};
import { openDatabase, sqliteDriverInfo } from ${JSON.stringify(OPEN_URL)};
try {
  probeSqlite();
  Deno.exit(3);
} catch (error) {
  console.log(error.message);
}
const info = sqliteDriverInfo();
using db = openDatabase(":memory:");
console.log(info.driver, db.driver);
try {
  openDatabase(":memory:", { driver: "ffi" });
  Deno.exit(4);
} catch (error) {
  console.log(error.message === undefined ? "none" : "ffi refused");
}`,
    ["--allow-read", "--allow-env", "--allow-ffi"],
    { DENO_SQLITE_PATH: bogus },
  );
  assert.equal(result.code, 0, result.stderr);
  const [message, drivers, refused] = result.stdout.trim().split("\n");
  assert.ok(
    message?.startsWith(`Cannot load SQLite: tried ${bogus} (`),
    message,
  );
  assert.ok(!message?.includes("libsqlite3.so.0"), message);
  assert.equal(drivers, "builtin builtin");
  assert.equal(refused, "ffi refused");
});

Deno.test("openDatabase() follows SLUICE_SQLITE_DRIVER when the driver is auto", async () => {
  const result = await runScript(
    `import { openDatabase } from ${JSON.stringify(OPEN_URL)};
using db = openDatabase(":memory:");
console.log(db.driver);
using explicit = openDatabase(":memory:", { driver: "ffi" });
console.log(explicit.driver);`,
    ["--allow-read", "--allow-env", "--allow-ffi"],
    { SLUICE_SQLITE_DRIVER: "builtin" },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "builtin\nffi\n");
  const invalid = await runScript(
    `import { openDatabase } from ${JSON.stringify(OPEN_URL)};
try {
  openDatabase(":memory:");
} catch (error) {
  console.log(error.name, error.message);
}`,
    ["--allow-read", "--allow-env", "--allow-ffi"],
    { SLUICE_SQLITE_DRIVER: "mysql" },
  );
  assert.equal(invalid.code, 0, invalid.stderr);
  assert.match(invalid.stdout, /^TypeError .*SLUICE_SQLITE_DRIVER is "mysql"/);
});

Deno.test("importing mod.ts needs no --allow-ffi or --allow-env", async () => {
  const result = await runScript(
    `import { TaskQueue } from ${JSON.stringify(MOD_URL)};
import { openDatabase, sqliteDriverInfo } from ${JSON.stringify(OPEN_URL)};
console.log(typeof TaskQueue.open === "function" ? "" : "no queue");
console.log(sqliteDriverInfo().driver);
using db = openDatabase(":memory:");
console.log(db.driver);`,
    ["--allow-read"],
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "\nbuiltin\nbuiltin\n");
});

for (const driver of DRIVERS) {
  Deno.test(`Statement.get() sees new columns when the schema changes with the ${driver} driver`, () => {
    using db = openDatabase(":memory:", { driver });
    db.exec("CREATE TABLE s (a INTEGER)");
    db.exec("INSERT INTO s (a) VALUES (1)");
    const select = db.prepare("SELECT * FROM s");
    assert.deepEqual({ ...select.get() }, { a: 1 });
    db.exec("ALTER TABLE s ADD COLUMN b TEXT DEFAULT 'x'");
    assert.deepEqual({ ...select.get() }, { a: 1, b: "x" });
  });
}
