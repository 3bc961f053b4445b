import assert from "node:assert/strict";
import {
  type CounterName,
  COUNTERS,
  Metrics,
  type MetricsSnapshot,
  type WorkerStats,
} from "../../lib/metrics/metrics.ts";

/** A clock the test moves by hand. */
function manualClock(start = 0): { now: number; read: () => number } {
  const clock = {
    now: start,
    read: (): number => clock.now,
  };
  return clock;
}

const EXPECTED_COUNTERS = [
  "enqueued",
  "dequeued",
  "succeeded",
  "failed_transient",
  "failed_permanent",
  "retried",
  "rejected",
  "deduplicated",
  "dead_lettered",
  "timed_out",
  "workers_replaced",
  "stale_settles",
  "pruned",
  "cancelled",
];

Deno.test("COUNTERS lists every counter once in a fixed order", () => {
  assert.deepEqual(Object.keys(COUNTERS), EXPECTED_COUNTERS);
  assert.deepEqual(
    Object.values(COUNTERS),
    EXPECTED_COUNTERS.map((_, i) => i),
  );
});

Deno.test("Metrics.inc() adds to each counter independently when called", () => {
  const metrics = new Metrics({ clock: manualClock().read });
  const names = Object.keys(COUNTERS) as CounterName[];
  names.forEach((name, i) => metrics.inc(name, i + 1));
  metrics.inc("succeeded");
  const { counters } = metrics.snapshot();
  assert.deepEqual(Object.keys(counters), EXPECTED_COUNTERS);
  names.forEach((name, i) => {
    const expected = i + 1 + (name === "succeeded" ? 1 : 0);
    assert.equal(counters[name], expected, name);
    assert.equal(metrics.counter(name), expected, name);
  });
});

Deno.test("Metrics.inc() throws when the counter is unknown or n is negative", () => {
  const metrics = new Metrics();
  assert.throws(
    () => metrics.inc("nope" as CounterName),
    /^TypeError: Cannot count: unknown counter "nope"$/,
  );
  assert.throws(() => metrics.inc("retried", -1), RangeError);
  assert.throws(() => metrics.inc("retried", NaN), RangeError);
  assert.equal(metrics.counter("retried"), 0);
});

Deno.test("Metrics.setDepth() tracks current, max and time-weighted mean when the clock is controlled", () => {
  const clock = manualClock(1_000);
  const metrics = new Metrics({ clock: clock.read });
  // depth 0 for 100 ms, 10 for 200 ms, 4 for 700 ms: area 2000 + 2800.
  clock.now = 1_100;
  metrics.setDepth(10);
  clock.now = 1_300;
  metrics.setDepth(4);
  clock.now = 2_000;
  const { gauges, uptime_ms } = metrics.snapshot();
  assert.equal(uptime_ms, 1_000);
  assert.equal(gauges.queue_depth, 4);
  assert.equal(gauges.queue_depth_max, 10);
  assert.equal(gauges.queue_depth_mean, 4.8);
  // The open segment keeps growing until the next change.
  clock.now = 3_000;
  assert.equal(
    metrics.snapshot().gauges.queue_depth_mean,
    (4_800 + 4_000) / 2_000,
  );
});

Deno.test("Metrics.snapshot() reports the current depth as the mean when no time has passed", () => {
  const clock = manualClock();
  const metrics = new Metrics({ clock: clock.read });
  metrics.setDepth(7);
  assert.equal(metrics.snapshot().gauges.queue_depth_mean, 7);
});

Deno.test("Metrics.setInFlight() and setWorkersAlive() set gauges when called", () => {
  const metrics = new Metrics();
  metrics.setInFlight(3);
  metrics.setWorkersAlive(2);
  const { gauges } = metrics.snapshot();
  assert.equal(gauges.in_flight, 3);
  assert.equal(gauges.workers_alive, 2);
  assert.throws(() => metrics.setInFlight(-1), /Cannot set in-flight count/);
  assert.throws(() => metrics.setWorkersAlive(NaN), RangeError);
  assert.throws(() => metrics.setDepth(Infinity), /Cannot set queue depth/);
});

Deno.test("Metrics.snapshot() computes rates over the uptime when it is shorter than the window", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read, rateWindowS: 10 });
  clock.now = 500;
  metrics.inc("enqueued", 10);
  clock.now = 2_000;
  metrics.inc("dequeued", 4);
  const { rates } = metrics.snapshot();
  assert.equal(rates.window_s, 10);
  assert.equal(rates.enqueued_per_s, 5);
  assert.equal(rates.dequeued_per_s, 2);
});

Deno.test("Metrics.snapshot() drops old seconds from the rate when the window slides", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read, rateWindowS: 10 });
  // 100 tasks in second 0, then 1 per second in seconds 1..14.
  metrics.inc("enqueued", 100);
  for (let s = 1; s <= 14; s++) {
    clock.now = s * 1_000 + 10;
    metrics.inc("enqueued");
  }
  clock.now = 15_000;
  // The window is seconds 6..15 (15 barely begun): 9 events (6..14) over 9 s.
  assert.equal(metrics.snapshot().rates.enqueued_per_s, 1);
  assert.equal(metrics.counter("enqueued"), 114);
  // Long idle: every slot has expired.
  clock.now = 60_000;
  assert.equal(metrics.snapshot().rates.enqueued_per_s, 0);
  assert.equal(metrics.snapshot().rates.dequeued_per_s, 0);
});

Deno.test("Metrics.snapshot() counts the partial current second when the window is full", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read, rateWindowS: 2 });
  clock.now = 5_000;
  metrics.inc("dequeued", 3); // second 5
  clock.now = 6_500;
  metrics.inc("dequeued", 3); // second 6
  // Window covers 5_000 .. 6_500: 6 events in 1.5 s.
  assert.equal(metrics.snapshot().rates.dequeued_per_s, 4);
});

Deno.test("Metrics.recordLatency() feeds wait, run and end-to-end histograms when called", () => {
  const metrics = new Metrics();
  metrics.recordLatency(2, 10);
  metrics.recordLatency(4, 30);
  const { latency } = metrics.snapshot();
  assert.deepEqual(Object.keys(latency), ["queue_wait", "run", "end_to_end"]);
  assert.deepEqual(latency.queue_wait, {
    count: 2,
    sum_ms: 6,
    mean_ms: 3,
    min_ms: 2,
    max_ms: 4,
    p50_ms: 2,
    p95_ms: 4,
    p99_ms: 4,
  });
  assert.equal(latency.run.sum_ms, 40);
  assert.equal(latency.end_to_end.min_ms, 12);
  assert.equal(latency.end_to_end.max_ms, 34);
  assert.throws(() => metrics.recordLatency(-1, 5), RangeError);
  assert.equal(metrics.runTime.count, 2, "a rejected pair records nothing");
});

Deno.test("Metrics.snapshot() computes utilization from the provider when workers report busy time", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read });
  let stats: WorkerStats[] = [
    { id: 2, busyMs: 1_000, alive: true, tasks: 10 },
    { id: 1, busyMs: 500, alive: true, tasks: 4 },
    { id: 0, busyMs: 500, alive: false, tasks: 1 },
  ];
  metrics.setWorkerStatsProvider(() => stats);
  clock.now = 2_000;
  const { utilization } = metrics.snapshot();
  // 2000 busy ms over 2000 wall ms × 2 workers alive.
  assert.equal(utilization.overall, 0.5);
  assert.deepEqual(utilization.workers, [
    { id: 0, alive: false, tasks: 1, busy_ms: 500, utilization: 0.25 },
    { id: 1, alive: true, tasks: 4, busy_ms: 500, utilization: 0.25 },
    { id: 2, alive: true, tasks: 10, busy_ms: 1_000, utilization: 0.5 },
  ]);
  stats = [
    { id: 1, busyMs: 100, alive: false, tasks: 1 },
    { id: 1, busyMs: 300, alive: true, tasks: 2 },
  ];
  const merged = metrics.snapshot().utilization;
  assert.deepEqual(merged.workers, [
    { id: 1, alive: true, tasks: 3, busy_ms: 400, utilization: 0.2 },
  ]);
  metrics.setWorkerStatsProvider(undefined);
  assert.deepEqual(metrics.snapshot().utilization, { overall: 0, workers: [] });
  assert.throws(
    () => metrics.setWorkerStatsProvider(42 as unknown as () => WorkerStats[]),
    TypeError,
  );
});

Deno.test("Metrics.snapshot() has a stable field order and round-trips through JSON", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({
    clock: clock.read,
    wallClock: () => Date.UTC(2025, 0, 2, 3, 4, 5, 6),
  });
  clock.now = 1_234;
  const snapshot = metrics.snapshot();
  assert.deepEqual(Object.keys(snapshot), [
    "timestamp",
    "uptime_ms",
    "counters",
    "gauges",
    "rates",
    "latency",
    "utilization",
  ]);
  assert.deepEqual(Object.keys(snapshot.gauges), [
    "queue_depth",
    "queue_depth_max",
    "queue_depth_mean",
    "in_flight",
    "workers_alive",
    "running",
    "claimed",
  ]);
  assert.deepEqual(Object.keys(snapshot.rates), [
    "window_s",
    "enqueued_per_s",
    "dequeued_per_s",
  ]);
  assert.equal(snapshot.timestamp, "2025-01-02T03:04:05.006Z");
  assert.equal(snapshot.uptime_ms, 1_234);
  assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
});

Deno.test("Metrics.toCsvRow() matches the header's columns when given snapshots", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read });
  metrics.setWorkerStatsProvider(() => [
    { id: 0, busyMs: 1, alive: true, tasks: 1 },
  ]);
  const header = metrics.toCsvHeader().split(",");
  assert.equal(header.length, new Set(header).size, "no duplicate columns");
  assert.deepEqual(header.slice(0, 3), [
    "timestamp",
    "uptime_ms",
    "counters.enqueued",
  ]);
  assert.deepEqual(
    header.slice(2, 2 + EXPECTED_COUNTERS.length),
    EXPECTED_COUNTERS.map((c) => `counters.${c}`),
  );
  assert.deepEqual(header.slice(-2), [
    "utilization.overall",
    "utilization.workers",
  ]);
  assert.ok(header.includes("latency.end_to_end.p99_ms"));
  assert.equal(header.length, 2 + EXPECTED_COUNTERS.length + 7 + 3 + 3 * 8 + 2);

  metrics.inc("failed_permanent", 3);
  metrics.recordLatency(1, 2);
  clock.now = 1_000;
  const row = metrics.toCsvRow(metrics.snapshot()).split(",");
  assert.equal(row.length, header.length);
  const cell = (name: string): string | undefined => row[header.indexOf(name)];
  assert.equal(cell("counters.failed_permanent"), "3");
  assert.equal(cell("uptime_ms"), "1000");
  assert.equal(cell("latency.end_to_end.max_ms"), "3");
  assert.equal(cell("utilization.workers"), "1");
});

Deno.test("Metrics.csv() writes a header and one row per snapshot when given several", () => {
  const metrics = new Metrics();
  const snapshots: MetricsSnapshot[] = [metrics.snapshot()];
  metrics.inc("enqueued");
  snapshots.push(metrics.snapshot());
  const lines = Metrics.csv(snapshots).split("\n");
  assert.equal(lines.length, 4);
  assert.equal(lines[3], "");
  assert.equal(lines[0], metrics.toCsvHeader());
  assert.equal(lines[2], metrics.toCsvRow(snapshots[1]!));
  assert.equal(Metrics.csv([]), metrics.toCsvHeader() + "\n");
});

interface Sample {
  name: string;
  labels: string;
  value: string;
}

/** Parses exposition text, checking the format's rules line by line. */
function parsePrometheus(text: string): {
  types: Map<string, string>;
  samples: Sample[];
} {
  const help = new Set<string>();
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const nameRe = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  assert.ok(text.endsWith("\n"), "ends with a line break");
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [
        string,
        string,
        string,
        string,
      ];
      assert.match(name, nameRe);
      if (kind === "HELP") {
        assert.ok(!help.has(name), `one HELP for ${name}`);
        help.add(name);
      } else {
        assert.ok(help.has(name), `HELP before TYPE for ${name}`);
        assert.ok(!types.has(name), `one TYPE for ${name}`);
        assert.ok(
          ["counter", "gauge", "summary", "histogram", "untyped"].includes(
            rest,
          ),
        );
        types.set(name, rest);
      }
      continue;
    }
    const sample = /^([^{\s]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    assert.ok(sample !== null, `sample line: ${line}`);
    const [, name, labels = "", value] = sample as unknown as [
      string,
      string,
      string | undefined,
      string,
    ];
    assert.match(name, nameRe);
    assert.match(value, /^(NaN|[+-]Inf|-?\d+(\.\d+)?(e[+-]?\d+)?)$/, line);
    const family = types.has(name) ? name : name.replace(/_(sum|count)$/, "");
    assert.ok(types.has(family), `TYPE before sample ${name}`);
    assert.ok(help.has(family), `HELP before sample ${name}`);
    if (family !== name) assert.equal(types.get(family), "summary");
    const key = `${name}{${labels}}`;
    assert.ok(!series.has(key), `duplicate series ${key}`);
    series.add(key);
    samples.push({ name, labels, value });
  }
  return { types, samples };
}

Deno.test("Metrics.toPrometheus() writes valid exposition text when metrics have data", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read });
  metrics.setWorkerStatsProvider(() => [
    { id: 0, busyMs: 250, alive: true, tasks: 3 },
    { id: 1, busyMs: 750, alive: true, tasks: 5 },
  ]);
  metrics.setWorkersAlive(2);
  for (const name of Object.keys(COUNTERS) as CounterName[]) metrics.inc(name);
  metrics.setDepth(5);
  metrics.recordLatency(1, 2_000);
  clock.now = 1_000;
  const { types, samples } = parsePrometheus(metrics.toPrometheus());

  for (const [name, type] of types) {
    assert.ok(name.startsWith("sluice_"), name);
    if (type === "counter") assert.ok(name.endsWith("_total"), name);
  }
  for (const counter of EXPECTED_COUNTERS) {
    assert.equal(types.get(`sluice_${counter}_total`), "counter");
  }
  const value = (name: string, labels = ""): string | undefined =>
    samples.find((s) => s.name === name && s.labels === labels)?.value;
  assert.equal(value("sluice_enqueued_total"), "1");
  assert.equal(value("sluice_queue_depth"), "5");
  assert.equal(types.get("sluice_run_seconds"), "summary");
  assert.equal(value("sluice_run_seconds", 'quantile="0.99"'), "2");
  assert.equal(value("sluice_run_seconds_sum"), "2");
  assert.equal(value("sluice_end_to_end_seconds_count"), "1");
  assert.equal(value("sluice_queue_wait_seconds", 'quantile="0.5"'), "0.001");
  assert.equal(value("sluice_utilization"), "0.5");
  assert.equal(value("sluice_worker_utilization", 'worker="1"'), "0.75");
  assert.equal(value("sluice_worker_tasks_total", 'worker="0"'), "3");
});

Deno.test("Metrics.toPrometheus() writes NaN quantiles when a summary is empty", () => {
  const metrics = new Metrics();
  const { samples } = parsePrometheus(metrics.toPrometheus());
  const quantiles = samples.filter((s) =>
    s.name === "sluice_queue_wait_seconds"
  );
  assert.deepEqual(quantiles.map((s) => [s.labels, s.value]), [
    ['quantile="0.5"', "NaN"],
    ['quantile="0.95"', "NaN"],
    ['quantile="0.99"', "NaN"],
  ]);
  assert.equal(
    samples.find((s) => s.name === "sluice_queue_wait_seconds_count")?.value,
    "0",
  );
});

Deno.test("Metrics.toPrometheus() renders a given snapshot when one is passed", () => {
  const metrics = new Metrics();
  const snapshot = metrics.snapshot();
  metrics.inc("rejected", 9);
  assert.match(metrics.toPrometheus(snapshot), /^sluice_rejected_total 0$/m);
  assert.match(metrics.toPrometheus(), /^sluice_rejected_total 9$/m);
});

Deno.test("new Metrics() throws naming the option when options are invalid", () => {
  assert.throws(
    () => new Metrics({ rateWindowS: 0 }),
    /^RangeError: .*"rateWindowS".*got 0$/,
  );
  assert.throws(() => new Metrics({ rateWindowS: 1.5 }), /"rateWindowS"/);
  assert.throws(
    () => new Metrics({ clock: 5 as unknown as () => number }),
    /^TypeError: .*"clock".*got number$/,
  );
  assert.throws(
    () => new Metrics({ wallClock: null as unknown as () => number }),
    /"wallClock"/,
  );
  assert.throws(
    () => new Metrics({ histogram: { significantDigits: 9 } }),
    /"significantDigits"/,
  );
});

Deno.test("Metrics.recordEnqueue() and recordDequeue() count, rate and set depth without reading the clock when given now", () => {
  let reads = 0;
  const metrics = new Metrics({
    clock: () => {
      reads++;
      return 0;
    },
  });
  reads = 0;
  metrics.recordEnqueue(1, 100);
  metrics.recordEnqueue(2, 200);
  metrics.recordDequeue(1, 600);
  metrics.setDepth(0, 1_000);
  assert.equal(reads, 0);
  assert.equal(metrics.counter("enqueued"), 2);
  assert.equal(metrics.counter("dequeued"), 1);
  const { gauges, rates } = metrics.snapshot(); // reads the clock: now = 0
  assert.equal(reads, 1);
  assert.equal(gauges.queue_depth, 0);
  assert.equal(gauges.queue_depth_max, 2);
  assert.equal(rates.enqueued_per_s, 0, "no time has passed at now = 0");
  assert.throws(() => metrics.recordEnqueue(-1, 0), RangeError);
  assert.equal(
    metrics.counter("enqueued"),
    2,
    "a rejected depth counts nothing",
  );
});

Deno.test("Metrics.recordEnqueue() reads the clock when now is omitted", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read });
  clock.now = 500;
  metrics.recordEnqueue(3);
  clock.now = 1_000;
  metrics.recordDequeue(2);
  clock.now = 2_000;
  const { gauges, rates } = metrics.snapshot();
  // Depth 0 for 500 ms, 3 for 500 ms, 2 for 1000 ms.
  assert.equal(gauges.queue_depth_mean, (1_500 + 2_000) / 2_000);
  assert.equal(rates.enqueued_per_s, 0.5);
  assert.equal(rates.dequeued_per_s, 0.5);
});

Deno.test("Metrics.setDepth() adds no area when now is older than the last change", () => {
  const clock = manualClock(0);
  const metrics = new Metrics({ clock: clock.read });
  metrics.setDepth(10, 1_000);
  metrics.setDepth(2, 400); // out of order: the 10 ran until 1_000 anyway
  clock.now = 2_000;
  const { gauges } = metrics.snapshot();
  assert.equal(gauges.queue_depth, 2);
  assert.equal(gauges.queue_depth_mean, (0 * 1_000 + 2 * 1_000) / 2_000);
});
