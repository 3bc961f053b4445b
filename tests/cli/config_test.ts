import assert from "node:assert/strict";
import {
  CONFIG_DOCS,
  ConfigError,
  configHelp,
  type ConfigKey,
  ENV_NAMES,
  readEnv,
  resolveConfig,
} from "../../lib/cli/config.ts";
import { LOG_LEVELS } from "../../lib/log.ts";
import { tempDir } from "../_helpers.ts";
import { cli, ok } from "./_cli.ts";

Deno.test("resolveConfig() prefers flags over environment over defaults", () => {
  const defaults = resolveConfig({}, {});
  assert.equal(defaults.db, "tasks.db");
  assert.equal(defaults.capacity, 1024);
  assert.equal(defaults.overflow, "block");
  assert.equal(defaults.metricsPort, null);

  const env = { SLUICE_WORKERS: "3", SLUICE_DB: "env.db" };
  const fromEnv = resolveConfig({}, env);
  assert.equal(fromEnv.workers, 3);
  assert.equal(fromEnv.db, "env.db");

  const fromFlags = resolveConfig({ workers: "5", synchronous: "full" }, env);
  assert.equal(fromFlags.workers, 5);
  assert.equal(fromFlags.db, "env.db");
  assert.equal(fromFlags.synchronous, "FULL");
});

Deno.test("resolveConfig() names the flag or variable when a value is bad", () => {
  assert.throws(
    () => resolveConfig({ workers: "0" }),
    (e: unknown) =>
      e instanceof ConfigError && /--workers .*"0"/.test(e.message),
  );
  assert.throws(
    () => resolveConfig({}, { SLUICE_OVERFLOW: "drop" }),
    (e: unknown) =>
      e instanceof ConfigError && /SLUICE_OVERFLOW .*"drop"/.test(e.message),
  );
  assert.throws(
    () => resolveConfig({}, { SLUICE_METRICS_PORT: "70000" }),
    ConfigError,
  );
});

Deno.test("resolveConfig() takes the log levels of lib/log.ts, and info is the one default", () => {
  assert.equal(resolveConfig({}).logLevel, "info");
  for (const level of LOG_LEVELS) {
    assert.equal(resolveConfig({ logLevel: level }).logLevel, level);
  }
  assert.throws(
    () => resolveConfig({ logLevel: "verbose" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message.includes(LOG_LEVELS.join(", ")),
  );
  assert.equal(
    resolveConfig({}, { SLUICE_LOG_LEVEL: "debug" }).logLevel,
    "debug",
  );
});

Deno.test("cli.ts run, submit and start all default to --log-level info", async () => {
  for (const command of ["run", "submit", "start"]) {
    const help = await ok([command, "--help"]);
    assert.match(
      help,
      /--log-level LEVEL .*\n.*\(SLUICE_LOG_LEVEL, default info\)/,
    );
  }
});

Deno.test("configHelp() shows the flag, variable and default of every setting", () => {
  const keys = Object.keys(CONFIG_DOCS) as ConfigKey[];
  const help = configHelp(keys);
  for (const key of keys) {
    const doc = CONFIG_DOCS[key];
    assert.ok(help.includes(`${doc.flag} ${doc.arg}`), doc.flag);
    assert.ok(help.includes(`(${doc.env}, default ${doc.default})`), doc.env);
    assert.equal(ENV_NAMES[key], doc.env);
  }
});

Deno.test("readEnv() returns only SLUICE_* variables that are set", () => {
  const values = readEnv([ENV_NAMES.db, "SLUICE_SURELY_UNSET_VARIABLE"]);
  assert.equal("SLUICE_SURELY_UNSET_VARIABLE" in values, false);
  assert.equal(values[ENV_NAMES.db], Deno.env.get(ENV_NAMES.db));
});

Deno.test("cli.ts treats SLUICE_* as unset without --allow-env", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/env.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  const env = { SLUICE_DB: db };
  const allowed = await cli(["status", "--json"], { cwd: dir.path, env });
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(JSON.parse(allowed.stdout).counts.queued, 1);
  const denied = await cli(["status", "--json"], {
    permissions: [
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-sys",
    ],
    cwd: dir.path,
    env,
  });
  assert.equal(denied.code, 1);
  assert.match(
    denied.stderr,
    /error: Cannot open task store tasks\.db read-only: there is no Sluice queue there/,
  );
});

Deno.test("cli.ts reads only the SLUICE_* variables of the command it runs", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/only.db`;
  await ok(["submit", "--db", db, "--type", "noop"]);
  // status takes no --workers: a bad SLUICE_WORKERS is not its concern.
  const result = await cli(["status", "--db", db, "--json"], {
    env: { SLUICE_WORKERS: "many" },
  });
  assert.equal(result.code, 0, result.stderr);
  const run = await cli(["run", "--tasks", "x.json"], {
    env: { SLUICE_WORKERS: "many" },
  });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /SLUICE_WORKERS .*"many"/);
});
