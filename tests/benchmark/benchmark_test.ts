import assert from "node:assert/strict";
import {
  BENCHMARK_CSV_COLUMNS,
  benchmarkToCsv,
  formatBenchmarkTable,
  percentile,
  runBenchmark,
} from "../../lib/benchmark/benchmark.ts";
import { escapeXml, renderChart } from "../../lib/benchmark/chart.ts";
import { formatDuration, Progress } from "../../lib/cli/progress.ts";
import { tempDir } from "../_helpers.ts";

const cli = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("cli.ts --benchmark writes benchmark.json, .csv and .svg with every field", async () => {
  await using dir = await tempDir();
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      cli,
      "--benchmark",
      "--tasks",
      "20",
      "--producers",
      "2,4",
      "--out",
      dir.path,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /^impl\s+producers/);
  assert.match(stdout, /throughput ratio/);

  const report = JSON.parse(
    await Deno.readTextFile(`${dir.path}/benchmark.json`),
  );
  assert.equal(typeof report.machine.cores, "number");
  assert.equal(report.machine.deno, Deno.version.deno);
  assert.match(report.machine.sqlite_driver, /^sqlite-(ffi|builtin)$/);
  assert.equal(typeof report.machine.os, "string");
  assert.ok("cpu" in report.machine);
  assert.equal(report.config.tasks, 20);
  assert.deepEqual(report.config.producers, [2, 4]);
  assert.equal(report.config.workers, 2);
  assert.equal(report.config.concurrency, 64);
  assert.equal(report.config.capacity, 1024);
  assert.equal(report.config.process_ms, 30);
  assert.equal(report.config.seed, 1);
  // The SQLite files lived under --out and are gone: nothing else written.
  assert.equal(report.config.db, "given");
  const left = [];
  for await (const entry of Deno.readDir(dir.path)) left.push(entry.name);
  assert.deepEqual(left.sort(), [
    "benchmark.csv",
    "benchmark.json",
    "benchmark.svg",
  ]);
  assert.equal(report.runs.length, 4);
  assert.deepEqual(
    report.runs.map((r: { impl: string; producers: number }) =>
      `${r.impl}/${r.producers}`
    ),
    ["baseline/2", "optimized/2", "baseline/4", "optimized/4"],
  );
  for (const run of report.runs) {
    for (const field of BENCHMARK_CSV_COLUMNS) {
      assert.ok(field in run, `${run.impl} run lacks ${field}`);
    }
    assert.equal(run.tasks, 20);
    assert.ok(run.seconds > 0);
    assert.ok(run.throughput_per_s > 0);
    assert.ok(run.mean_ms > 0);
    assert.ok(run.p95_ms >= run.mean_ms * 0.5);
    assert.ok(run.p99_ms >= run.p95_ms);
    assert.equal(run.error_rate, 0);
    assert.equal(run.retries, 0);
    assert.equal(run.rejections, 0);
    assert.equal(typeof run.queue_depth_max, "number");
    assert.ok(run.queue_depth_mean >= 0);
    assert.ok(run.utilization > 0 && run.utilization <= 1);
  }
  assert.equal(report.comparison.length, 2);
  for (const c of report.comparison) {
    const base = report.runs.find((r: { impl: string; producers: number }) =>
      r.impl === "baseline" && r.producers === c.producers
    );
    const opt = report.runs.find((r: { impl: string; producers: number }) =>
      r.impl === "optimized" && r.producers === c.producers
    );
    assert.equal(
      c.throughput_ratio,
      opt.throughput_per_s / base.throughput_per_s,
    );
    assert.equal(c.p95_ratio, opt.p95_ms / base.p95_ms);
  }

  const csv = (await Deno.readTextFile(`${dir.path}/benchmark.csv`)).trim()
    .split("\n");
  assert.equal(csv[0], BENCHMARK_CSV_COLUMNS.join(","));
  assert.equal(csv.length, 5);
  assert.match(csv[1]!, /^baseline,2,20,/);

  const svg = await Deno.readTextFile(`${dir.path}/benchmark.svg`);
  assert.match(svg, /^<svg /);
  assert.match(svg, /xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /viewBox="0 0 \d+ \d+"/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.equal(svg.match(/<rect [^>]*fill="#(?!ffffff)/g)?.length, 2 * 4 + 2); // bars per panel, legend
});

Deno.test("percentile() matches the nearest rank of a sorted array", () => {
  const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6].sort((a, b) => a - b);
  assert.equal(percentile(values, 50), 5);
  assert.equal(percentile(values, 95), 10);
  assert.equal(percentile(values, 90), 9);
  assert.equal(percentile(values, 0), 1);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile(values, 101), RangeError);
});

Deno.test("runBenchmark() rejects bad sizes before running anything", async () => {
  await assert.rejects(
    runBenchmark({ tasks: 0 }),
    /tasks must be an integer >= 1, got 0/,
  );
  await assert.rejects(runBenchmark({ producers: [] }), RangeError);
  await assert.rejects(runBenchmark({ producers: [2, 1.5] }), /producers\[1\]/);
  await assert.rejects(runBenchmark({ workers: -1 }), /workers/);
  await assert.rejects(runBenchmark({ processMs: -5 }), /processMs/);
  await assert.rejects(
    runBenchmark({ signal: AbortSignal.abort(new Error("stop")) }),
    /stop/,
  );
});

Deno.test("benchmarkToCsv() leaves null fields empty and formatBenchmarkTable() prints ratios", () => {
  const run = {
    impl: "baseline" as const,
    producers: 2,
    tasks: 10,
    seconds: 1,
    throughput_per_s: 10,
    mean_ms: 5,
    p95_ms: 9,
    p99_ms: 9.5,
    error_rate: 0,
    retries: 0,
    queue_depth_max: null,
    queue_depth_mean: null,
    rejections: 0,
    utilization: 0.3,
  };
  const report = {
    runs: [run],
    comparison: [{ producers: 2, throughput_ratio: 12.5, p95_ratio: 0.04 }],
  } as unknown as Parameters<typeof benchmarkToCsv>[0];
  const row = benchmarkToCsv(report).trim().split("\n")[1]!;
  assert.equal(row, "baseline,2,10,1,10,5,9,9.5,0,0,,,0,0.3");
  const table = formatBenchmarkTable(report);
  assert.match(table, /12\.5x/);
  assert.match(table, /0\.0400/);
});

Deno.test("renderChart() draws one bar per run and escapes labels", () => {
  const svg = renderChart([
    { impl: "a<b", producers: 1, throughput_per_s: 30, p95_ms: 900 },
    { impl: "c", producers: 1, throughput_per_s: 3000, p95_ms: 31 },
  ], { title: "T & U" });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.includes("a&lt;b"));
  assert.ok(svg.includes("T &amp; U"));
  assert.ok(!svg.includes("a<b"));
  assert.equal(svg.match(/<title>/g)?.length, 1 + 4);
  assert.equal(escapeXml(`"'`), "&quot;&apos;");
  assert.throws(() => renderChart([], { width: 0 }), RangeError);
});

Deno.test("Progress.update() draws on a terminal and stays silent otherwise", () => {
  const written: string[] = [];
  const stream = (terminal: boolean) => ({
    writeSync(bytes: Uint8Array): number {
      written.push(new TextDecoder().decode(bytes));
      return bytes.length;
    },
    isTerminal: () => terminal,
  });
  let now = 0;
  const quiet = new Progress({
    total: 10,
    stream: stream(false),
    clock: () => now,
  });
  quiet.update(5);
  quiet.clear();
  assert.equal(written.length, 0);
  assert.equal(quiet.enabled, false);

  using shown = new Progress({
    label: "run",
    total: 10,
    stream: stream(true),
    clock: () => now,
    intervalMs: 100,
  });
  now = 1000;
  shown.update(5);
  assert.equal(written.length, 1);
  assert.match(written[0]!, /run {2}5\/10 {2}5\.0\/s {2}ETA 1s/);
  now = 1050;
  shown.update(6);
  assert.equal(written.length, 1, "redraws at most every intervalMs");
  shown.update(10);
  assert.equal(written.length, 2, "always draws the last count");
  assert.equal(formatDuration(65), "1m05s");
});
