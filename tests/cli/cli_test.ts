import assert from "node:assert/strict";
import {
  ConfigError,
  ENV_NAMES,
  readEnv,
  resolveConfig,
} from "../../lib/cli/config.ts";
import { tempDir, waitFor, withDeadline } from "../_helpers.ts";

const cli = new URL("../../cli.ts", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];
const decoder = new TextDecoder();

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  args: string[],
  permissions: string[] = PERMISSIONS,
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Output> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, cli, ...args],
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    ...(options.env !== undefined && { env: options.env }),
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function ok(args: string[]): Promise<string> {
  const result = await run(args);
  assert.equal(
    result.code,
    0,
    `${args.join(" ")} exited ${result.code}: ${result.stderr}`,
  );
  return result.stdout;
}

interface Status {
  counts: Record<string, number>;
  depth: number;
  dead_letters: number;
  total: number;
  throughput_per_s: number;
  oldest_queued_age_ms: number | null;
}

async function status(db: string): Promise<Status> {
  return JSON.parse(await ok(["status", "--db", db, "--json"])) as Status;
}

/** A `start` child process; disposing kills it if it is still running. */
function startWorker(
  db: string,
  extra: string[] = [],
): AsyncDisposable & { child: Deno.ChildProcess } {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS,
      cli,
      "start",
      "--db",
      db,
      "--log-level",
      "warn",
      ...extra,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    child,
    async [Symbol.asyncDispose](): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
    },
  };
}

// -- configuration ----------------------------------------------------------

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

Deno.test("resolveConfig() uses per-command overrides only as defaults", () => {
  assert.equal(resolveConfig({}, {}, { logLevel: "warn" }).logLevel, "warn");
  assert.equal(
    resolveConfig({}, { SLUICE_LOG_LEVEL: "debug" }, { logLevel: "warn" })
      .logLevel,
    "debug",
  );
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
  const allowed = await run(["status", "--json"], PERMISSIONS, {
    cwd: dir.path,
    env,
  });
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(JSON.parse(allowed.stdout).counts.queued, 1);
  const denied = await run(
    ["status", "--json"],
    ["--allow-read", "--allow-write", "--allow-ffi", "--allow-sys"],
    { cwd: dir.path, env },
  );
  assert.equal(denied.code, 1);
  assert.match(
    denied.stderr,
    /error: Cannot open task store tasks\.db read-only: there is no Sluice queue there/,
  );
});

// -- usage ------------------------------------------------------------------

Deno.test("cli.ts --help prints usage and exits 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /Usage:/);
  assert.match(stdout, /--benchmark/);
});

Deno.test("cli.ts <command> --help prints the command's usage and exits 0", async (t) => {
  for (
    const command of [
      "run",
      "submit",
      "start",
      "status",
      "monitor",
      "dlq",
      "export",
    ]
  ) {
    await t.step(command, async () => {
      const { code, stdout } = await run([command, "--help"]);
      assert.equal(code, 0);
      assert.match(stdout, new RegExp(`Usage:(.|\\n)*cli\\.ts ${command}`));
    });
  }
});

Deno.test("cli.ts --version prints the version and exits 0", async () => {
  const { code, stdout } = await run(["--version"]);
  assert.equal(code, 0);
  assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
});

Deno.test("cli.ts exits 2 with a clear error on an unknown flag", async () => {
  const { code, stderr } = await run(["--frobnicate"]);
  assert.equal(code, 2);
  assert.match(stderr, /error: .*frobnicate/);
});

Deno.test("cli.ts exits 2 on usage errors of each command", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["frob"], /unknown command "frob"/],
    [["run"], /run needs --tasks FILE/],
    [["run", "--tasks", "x.json", "--workers", "0"], /--workers .*"0"/],
    [["run", "--tasks", "x.json", "--overflow", "drop"], /--overflow/],
    [["submit", "--db", "x.db"], /exactly one of --file, --type or --random/],
    [["submit", "--db", "x.db", "--type"], /--type/],
    [["submit", "--type", "noop", "--count", "-1"], /--count|-1/],
    [["submit", "--type", "noop", "--payload", "{"], /--payload must be JSON/],
    [["start", "--metrics-port", "http"], /--metrics-port .*"http"/],
    [["status", "--workers", "2"], /--workers/],
    [["monitor", "--export", "xml"], /--export must be json or csv/],
    [["monitor", "--interval", "fast"], /--interval/],
    [["dlq"], /dlq needs an action/],
    [["dlq", "burn"], /unknown dlq action "burn"/],
    [["dlq", "requeue"], /task ids or --all/],
    [["export"], /export needs --format json or csv/],
    [["--benchmark", "--producers", "5,x"], /--producers/],
    [["--benchmark", "--tasks", "0"], /--tasks/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stderr } = await run(args);
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^error: /);
      assert.match(stderr, message);
    });
  }
});

Deno.test("cli.ts exits 1 on runtime failures", async (t) => {
  await using dir = await tempDir();
  await t.step("status on a missing database", async () => {
    const { code, stderr } = await run([
      "status",
      "--db",
      `${dir.path}/missing.db`,
    ]);
    assert.equal(code, 1);
    assert.match(
      stderr,
      /error: Cannot open task store .* there is no Sluice queue there/,
    );
  });
  await t.step("run with a database in a missing directory", async () => {
    const file = `${dir.path}/tasks.json`;
    await Deno.writeTextFile(file, JSON.stringify([{ type: "noop" }]));
    const { code, stderr } = await run([
      "run",
      "--tasks",
      file,
      "--db",
      `${dir.path}/no/such/dir/x.db`,
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /^error: /);
  });
  await t.step("run with a task file that is not an array", async () => {
    const file = `${dir.path}/bad.json`;
    await Deno.writeTextFile(file, "{}");
    const { code, stderr } = await run(["run", "--tasks", file]);
    assert.equal(code, 1);
    assert.match(stderr, /expected a JSON array/);
  });
});

// -- run --------------------------------------------------------------------

Deno.test("cli.ts run processes a task file and prints a summary", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/tasks.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify([
      { type: "noop", payload: 1, idempotencyKey: "a" },
      { type: "noop", payload: 1, idempotencyKey: "a" },
      { type: "compute", payload: { operation: "double", value: 2 } },
      { type: "fail", payload: { error_message: "no" } },
    ]),
  );
  const summary = JSON.parse(
    await ok([
      "run",
      "--tasks",
      file,
      "--db",
      `${dir.path}/run.db`,
      "--workers",
      "1",
      "--json",
    ]),
  );
  assert.equal(summary.tasks, 4);
  assert.equal(summary.succeeded, 3);
  assert.equal(summary.dead, 1);
  assert.equal(summary.deduplicated, 1);
  assert.equal(summary.rejected, 0);
  assert.ok(summary.seconds > 0);
  assert.ok(summary.tasks_per_s > 0);
  assert.ok(summary.p95_ms >= 0);
  const text = await ok([
    "run",
    "--tasks",
    file,
    "--db",
    ":memory:",
    "--workers",
    "1",
  ]);
  assert.match(text, /succeeded 3 {2}dead 1 {2}deduplicated 1 {2}rejected 0/);
});

// -- submit + start ---------------------------------------------------------

Deno.test("cli.ts start runs tasks another process submits and exits 0 on SIGTERM", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/q.db`;
  const submitted = JSON.parse(
    await ok([
      "submit",
      "--db",
      db,
      "--type",
      "noop",
      "--count",
      "5",
      "--json",
    ]),
  );
  assert.equal(submitted.submitted, 5);
  assert.equal(submitted.ids.length, 5);
  const metricsFile = `${dir.path}/final.json`;
  await using worker = startWorker(db, [
    "--workers",
    "1",
    "--metrics-file",
    metricsFile,
  ]);
  await waitFor(async () => (await status(db)).counts.succeeded === 5, {
    timeoutMs: 20_000,
    what: "5 tasks succeeded",
  });
  const more = await ok(["submit", "--db", db, "--random", "--count", "7"]);
  assert.equal(more.trim().split("\n").length, 7);
  await waitFor(async () => (await status(db)).counts.succeeded === 12, {
    timeoutMs: 20_000,
    what: "12 tasks succeeded",
  });
  worker.child.kill("SIGTERM");
  const exit = await withDeadline(worker.child.status, 10_000, "start to exit");
  assert.equal(exit.code, 0);
  const final = JSON.parse(await Deno.readTextFile(metricsFile));
  assert.equal(
    final.counters.succeeded,
    12,
    "final metrics written on shutdown",
  );
});

Deno.test("cli.ts status --json from another process shows a run in progress", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/busy.db`;
  await ok([
    "submit",
    "--db",
    db,
    "--type",
    "sleep",
    "--payload",
    '{"duration_ms":50}',
    "--count",
    "40",
  ]);
  await using worker = startWorker(db, [
    "--workers",
    "1",
    "--concurrency",
    "1",
  ]);
  let seen: Status | undefined;
  await waitFor(async () => {
    const s = await status(db);
    if (s.counts.running! >= 1 && s.counts.queued! >= 1) seen = s;
    return seen !== undefined;
  }, { timeoutMs: 20_000, what: "running and queued tasks" });
  assert.equal(seen!.total, 40);
  assert.ok(seen!.depth >= 1);
  assert.ok(seen!.oldest_queued_age_ms !== null);
  await waitFor(async () => (await status(db)).counts.succeeded === 40, {
    timeoutMs: 20_000,
    what: "40 tasks succeeded",
  });
  const done = await status(db);
  assert.equal(done.depth, 0);
  assert.ok(done.throughput_per_s > 0);
  worker.child.kill("SIGINT");
  assert.equal(
    (await withDeadline(worker.child.status, 10_000, "start to exit")).code,
    0,
  );
});

// -- dlq --------------------------------------------------------------------

Deno.test("cli.ts dlq lists, shows and requeues a dead task", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/dlq.db`;
  const id = (await ok([
    "submit",
    "--db",
    db,
    "--type",
    "fail",
    "--payload",
    '{"error_message":"broken on purpose"}',
  ])).trim();
  await using worker = startWorker(db, ["--workers", "1"]);
  await waitFor(async () => (await status(db)).dead_letters === 1, {
    timeoutMs: 20_000,
    what: "a dead task",
  });
  worker.child.kill("SIGTERM");
  assert.equal(
    (await withDeadline(worker.child.status, 10_000, "start to exit")).code,
    0,
  );

  const listed = JSON.parse(await ok(["dlq", "list", "--db", db, "--json"]));
  assert.equal(listed.length, 1);
  assert.equal(listed[0].id, id);
  assert.equal(listed[0].error_class, "permanent");
  assert.match(listed[0].last_error, /broken on purpose/);
  assert.match(await ok(["dlq", "list", "--db", db]), new RegExp(id));

  const shown = JSON.parse(await ok(["dlq", "show", id, "--db", db, "--json"]));
  assert.deepEqual(shown.payload, { error_message: "broken on purpose" });
  assert.equal(shown.status, "dead");
  const missing = await run(["dlq", "show", "nope", "--db", db]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /error: Cannot show task nope/);

  const requeued = JSON.parse(
    await ok(["dlq", "requeue", id, "--db", db, "--json"]),
  );
  assert.equal(requeued.requeued, 1);
  const after = await status(db);
  assert.equal(after.dead_letters, 0);
  assert.equal(after.counts.queued, 1);
  assert.match(await ok(["dlq", "requeue", "--all", "--db", db]), /requeued 0/);
});

// -- monitor, export --------------------------------------------------------

Deno.test("cli.ts monitor --once prints one frame and --export writes one snapshot", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/mon.db`;
  await ok(["submit", "--db", db, "--type", "noop", "--count", "3"]);

  const frame = await ok(["monitor", "--db", db, "--once"]);
  assert.match(frame, /queued\s+3/);
  assert.equal(frame.includes("\x1b["), false);

  const csv = (await ok(["monitor", "--db", db, "--once", "--export", "csv"]))
    .trim().split("\n");
  assert.equal(csv.length, 2);
  const header = csv[0]!.split(",");
  const row = csv[1]!.split(",");
  assert.equal(header.length, row.length);
  assert.equal(row[header.indexOf("queued")], "3");
  assert.equal(row[header.indexOf("depth")], "3");

  const json = (await ok(["monitor", "--db", db, "--once", "--export", "json"]))
    .trim().split("\n");
  assert.equal(json.length, 1);
  assert.equal(JSON.parse(json[0]!).counts.queued, 3);
});

Deno.test("cli.ts export writes every task as JSON or CSV", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/exp.db`;
  await ok([
    "submit",
    "--db",
    db,
    "--type",
    "noop",
    "--payload",
    '"a,b"',
    "--count",
    "2",
  ]);
  const tasks = JSON.parse(
    await ok(["export", "--db", db, "--format", "json"]),
  );
  assert.equal(tasks.length, 2);
  assert.deepEqual(Object.keys(tasks[0]), [
    "id",
    "type",
    "status",
    "attempts",
    "error_class",
    "last_error",
    "created_at",
    "updated_at",
  ]);
  assert.equal(tasks[0].status, "queued");
  const csv = (await ok(["export", "--db", db, "--format", "csv"])).trim()
    .split("\n");
  assert.equal(
    csv[0],
    "id,type,status,attempts,error_class,last_error,created_at,updated_at",
  );
  assert.equal(csv.length, 3);
  assert.match(csv[1]!, /^[0-9a-f-]{36},noop,queued,0,,,/);
});

Deno.test("cli.ts submit --file commits nothing and names the task's index in the file when one task is bad", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/tasks.db`;
  const file = `${dir.path}/tasks.json`;
  const tasks: unknown[] = Array.from(
    { length: 1000 },
    (_, i) => ({ type: "noop", payload: { i } }),
  );
  tasks[700] = { type: "noop", maxAttempts: 0 };
  await Deno.writeTextFile(file, JSON.stringify(tasks));
  // The database exists, so that status can read it afterwards.
  await ok(["submit", "--db", db, "--type", "noop"]);
  const bad = await run(["submit", "--db", db, "--file", file]);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, "", "no ids are printed");
  assert.match(bad.stderr, /tasks\[700\]: maxAttempts must be an integer >= 1/);
  assert.equal((await status(db)).total, 1, "none of the file was committed");

  tasks[700] = { type: "noop" };
  await Deno.writeTextFile(file, JSON.stringify(tasks));
  const good = await ok(["submit", "--db", db, "--file", file]);
  assert.equal(good.trim().split("\n").length, 1000);
  assert.equal((await status(db)).total, 1001);
});
