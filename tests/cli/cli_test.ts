import assert from "node:assert/strict";
import { tempDir } from "../_helpers.ts";
import { cli, COMMANDS, taskFile } from "./_cli.ts";

Deno.test("cli.ts --help prints usage and exits 0", async () => {
  const { code, stdout } = await cli(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /Usage:/);
  assert.match(stdout, /--benchmark/);
  for (const command of COMMANDS) {
    assert.match(stdout, new RegExp(`^  ${command} `, "m"));
  }
});

Deno.test("cli.ts <command> --help prints the command's usage and exits 0", async (t) => {
  for (const command of COMMANDS) {
    await t.step(command, async () => {
      const { code, stdout } = await cli([command, "--help"]);
      assert.equal(code, 0);
      assert.match(stdout, new RegExp(`Usage:(.|\\n)*cli\\.ts ${command}`));
    });
  }
  await t.step("--benchmark", async () => {
    const { code, stdout } = await cli(["--benchmark", "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /Usage: cli\.ts --benchmark/);
  });
});

Deno.test("cli.ts <command> --help leaves the deprecated spellings out", async () => {
  for (const command of COMMANDS) {
    const { stdout } = await cli([command, "--help"]);
    assert.doesNotMatch(stdout, /--max-retries|--export\b/, command);
  }
});

Deno.test("cli.ts --version prints the version and exits 0", async () => {
  const { code, stdout } = await cli(["--version"]);
  assert.equal(code, 0);
  assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
});

Deno.test("cli.ts exits 2 with a clear error on an unknown flag", async () => {
  const { code, stderr } = await cli(["--frobnicate"]);
  assert.equal(code, 2);
  assert.match(stderr, /error: .*frobnicate/);
});

Deno.test("cli.ts exits 2 on usage errors of each command, naming the flag", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["frob"], /unknown command "frob"/],
    [["run"], /run needs --tasks FILE/],
    [["run", "--tasks", "x.json", "--workers", "0"], /--workers .*"0"/],
    [["run", "--tasks", "x.json", "--overflow", "drop"], /--overflow/],
    [["run", "--tasks", "x.json", "--format", "xml"], /--format .*"xml"/],
    [["run", "--tasks", "x.json", "--json", "--format", "text"], /--json/],
    [["submit", "--db", "x.db"], /exactly one of --file, --type or --random/],
    [["submit", "--db", "x.db", "--type"], /--type/],
    [["submit", "--type", "noop", "--count", "-1"], /--count .*"-1"/],
    [["submit", "--type", "noop", "--count", "0"], /--count .*"0"/],
    [["submit", "--type", "noop", "--payload", "{"], /--payload must be JSON/],
    [["submit", "--type", "noop", "--max-retries", "-1"], /--max-retries/],
    [
      ["submit", "--type", "noop", "--max-retries", "1", "--max-attempts", "2"],
      /give only --max-attempts/,
    ],
    [["start", "--metrics-port", "http"], /--metrics-port .*"http"/],
    [["start", "--lease-ms", "0"], /--lease-ms .*"0"/],
    [["start", "--prefetch", "-1"], /--prefetch .*"-1"/],
    [["start", "--prefetch=-1"], /--prefetch .*"-1"/],
    [["start", "--poll-interval-ms", "0"], /--poll-interval-ms .*"0"/],
    [["start", "--deadline", "-5"], /--deadline .*"-5"/],
    [["start", "--lease-ms", "1.5"], /--lease-ms .*"1\.5"/],
    [["start", "--metrics-file", ""], /--metrics-file must not be empty/],
    [["start", "--handlers", ""], /--handlers must not be empty/],
    [["status", "--workers", "2"], /--workers/],
    [["status", "--format", "csv"], /--format .*"csv"/],
    [["monitor", "--format", "xml"], /--format must be one of .*"xml"/],
    [["monitor", "--export", "xml"], /--export must be one of .*"xml"/],
    [["monitor", "--interval", "fast"], /--interval/],
    [["monitor", "--interval", "5"], /--interval .*"5"/],
    [["dlq"], /dlq needs an action/],
    [["dlq", "burn"], /unknown dlq action "burn"/],
    [["dlq", "requeue"], /task ids or --all/],
    [["dlq", "list", "--limit", "0"], /--limit .*"0"/],
    [["export"], /export needs --format json or csv/],
    [["export", "--format", "text"], /--format .*"text"/],
    [["--benchmark", "--producers", "5,x"], /--producers/],
    [["--benchmark", "--tasks", "0"], /--tasks/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stderr } = await cli(args);
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^(warning: .*\n)?error: /);
      assert.match(stderr, message);
    });
  }
});

Deno.test("cli.ts checks numbers before opening anything", async () => {
  await using dir = await tempDir();
  const db = `${dir.path}/never.db`;
  for (
    const args of [
      ["start", "--db", db, "--lease-ms", "0"],
      ["start", "--db", db, "--prefetch", "-1"],
      ["run", "--db", db, "--tasks", "missing.json", "--capacity", "0"],
    ]
  ) {
    const { code } = await cli(args);
    assert.equal(code, 2, args.join(" "));
  }
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound);
});

Deno.test("cli.ts exits 1 on runtime failures", async (t) => {
  await using dir = await tempDir();
  await t.step("status on a missing database", async () => {
    const { code, stderr } = await cli([
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
    const file = await taskFile(`${dir.path}/tasks.json`, [{ type: "noop" }]);
    const { code, stderr } = await cli([
      "run",
      "--tasks",
      file,
      "--db",
      `${dir.path}/no/such/dir/x.db`,
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /^error: /m);
  });
  await t.step("run with a task file that is not an array", async () => {
    const file = `${dir.path}/bad.json`;
    await Deno.writeTextFile(file, "{}");
    const { code, stderr } = await cli(["run", "--tasks", file]);
    assert.equal(code, 1);
    assert.match(stderr, /expected a JSON array/);
  });
});
