import assert from "node:assert/strict";
import { tempDir } from "../_helpers.ts";
import { cli, ok, startWorker, submitTasks, untilStatus } from "./_cli.ts";

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
  await untilStatus(db, (s) => s.counts.succeeded === 5, "5 tasks succeeded");
  const more = await ok(["submit", "--db", db, "--random", "--count", "7"]);
  assert.equal(more.trim().split("\n").length, 7);
  await untilStatus(db, (s) => s.counts.succeeded === 12, "12 succeeded");
  assert.equal((await worker.stop("SIGTERM")).code, 0);
  const final = JSON.parse(await Deno.readTextFile(metricsFile));
  assert.equal(
    final.counters.succeeded,
    12,
    "final metrics written on shutdown",
  );
});

Deno.test("cli.ts start --metrics-file writes a utilization above 0 after running tasks", async (t) => {
  for (const name of ["final.json", "final.csv"]) {
    await t.step(name, async () => {
      await using dir = await tempDir();
      const db = `${dir.path}/util.db`;
      await submitTasks(db, "sleep", { duration_ms: 20 }, 10);
      const metricsFile = `${dir.path}/${name}`;
      await using worker = startWorker(db, [
        "--workers",
        "1",
        "--metrics-file",
        metricsFile,
      ]);
      await untilStatus(db, (s) => s.counts.succeeded === 10, "10 succeeded");
      assert.equal((await worker.stop("SIGTERM")).code, 0);
      const text = await Deno.readTextFile(metricsFile);
      let overall: number;
      if (name.endsWith(".csv")) {
        const [header, row] = text.trim().split("\n");
        const columns = header!.split(",");
        overall = Number(
          row!.split(",")[columns.indexOf("utilization.overall")],
        );
      } else {
        const final = JSON.parse(text);
        overall = final.utilization.overall;
        assert.equal(final.counters.succeeded, 10);
        assert.ok(final.utilization.workers[0].busy_ms >= 10 * 20 * 0.9);
      }
      assert.ok(overall > 0, `utilization.overall is ${overall}`);
    });
  }
});

Deno.test("cli.ts start checks --metrics-file before running anything", async (t) => {
  await using dir = await tempDir();
  await using other = await tempDir();
  const db = `${dir.path}/never.db`;
  await t.step("a missing directory is a usage error (exit 2)", async () => {
    const result = await cli([
      "start",
      "--db",
      db,
      "--metrics-file",
      `${dir.path}/no/such/dir/m.json`,
    ]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--metrics-file .*does not exist/);
  });
  await t.step("a directory is a usage error (exit 2)", async () => {
    const result = await cli(["start", "--db", db, "--metrics-file", dir.path]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--metrics-file .* is a directory/);
  });
  await t.step(
    "a file that cannot be written is a runtime failure (exit 1)",
    async () => {
      const result = await cli(
        ["start", "--db", db, "--metrics-file", `${other.path}/m.json`],
        {
          permissions: [
            "--allow-read",
            `--allow-write=${dir.path}`,
            "--allow-ffi",
            "--allow-env",
          ],
        },
      );
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /error: Cannot write metrics file /);
    },
  );
  await assert.rejects(Deno.stat(db), Deno.errors.NotFound, "nothing opened");
  const left = [];
  for await (const entry of Deno.readDir(other.path)) left.push(entry.name);
  assert.deepEqual(left, [], "the check leaves no file behind");
});
