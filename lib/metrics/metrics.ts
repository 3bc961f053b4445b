/**
 * Queue metrics: counters, gauges, sliding-window rates, latency histograms
 * and worker utilization, exported as JSON, CSV and Prometheus text.
 *
 * @module
 */
import { Histogram, type HistogramOptions } from "./histogram.ts";

/**
 * The counters, by name, mapped to their slot. These keys are the one
 * spelling shared by {@linkcode Metrics.inc}, the snapshot, the CSV columns
 * (`counters.<name>`) and the Prometheus names (`sluice_<name>_total`).
 *
 * @example Listing the counter names
 * ```ts
 * import { COUNTERS } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Object.keys(COUNTERS)[0], "enqueued");
 * assert.equal(COUNTERS.succeeded, 2);
 * ```
 */
export const COUNTERS = {
  /** Tasks accepted by `submit`. */
  enqueued: 0,
  /** Tasks taken off the channel and handed to a worker. */
  dequeued: 1,
  /** Tasks whose handler returned. */
  succeeded: 2,
  /** Attempts that failed with a transient error. */
  failed_transient: 3,
  /** Attempts that failed with a permanent error. */
  failed_permanent: 4,
  /** Attempts scheduled again after a transient failure. */
  retried: 5,
  /** Submissions refused because the channel was full. */
  rejected: 6,
  /** Submissions answered by an existing task with the same idempotency key. */
  deduplicated: 7,
  /** Tasks moved to the dead-letter state. */
  dead_lettered: 8,
  /** Attempts that exceeded their timeout. */
  timed_out: 9,
  /** Workers that died or were terminated and were replaced. */
  workers_replaced: 10,
  /** Results that arrived for attempts already settled elsewhere. */
  stale_settles: 11,
  /** Finished tasks deleted by retention. */
  pruned: 12,
  /** Tasks cancelled through this queue's `cancel`. */
  cancelled: 13,
} as const;

/** What a queue reports for the `running` and `claimed` gauges. */
export interface TaskStateCounts {
  /** Handlers started and not finished. */
  running: number;
  /** Tasks held whose handlers have not started. */
  claimed: number;
}

/** A counter's name: a key of {@linkcode COUNTERS}. */
export type CounterName = keyof typeof COUNTERS;

/** Every counter's value, keyed and ordered as {@linkcode COUNTERS}. */
export type CounterValues = { [K in CounterName]: number };

const COUNTER_NAMES: readonly CounterName[] = Object.keys(
  COUNTERS,
) as CounterName[];

const COUNTER_HELP: { readonly [K in CounterName]: string } = {
  enqueued: "Tasks accepted by submit.",
  dequeued: "Tasks taken off the channel and handed to a worker.",
  succeeded: "Tasks whose handler returned.",
  failed_transient: "Attempts that failed with a transient error.",
  failed_permanent: "Attempts that failed with a permanent error.",
  retried: "Attempts scheduled again after a transient failure.",
  rejected: "Submissions refused because the channel was full.",
  deduplicated:
    "Submissions answered by an existing task with the same idempotency key.",
  dead_lettered: "Tasks moved to the dead-letter state.",
  timed_out: "Attempts that exceeded their timeout.",
  workers_replaced: "Workers that died or were terminated and were replaced.",
  stale_settles: "Results that arrived for attempts already settled elsewhere.",
  pruned: "Finished tasks deleted by retention.",
  cancelled: "Tasks cancelled through this queue's cancel.",
};

/**
 * What the worker pool reports about one worker, through the provider given
 * to {@linkcode Metrics.setWorkerStatsProvider}.
 *
 * @example A worker's stats
 * ```ts
 * import type { WorkerStats } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * const stats: WorkerStats = { id: 0, busyMs: 250, alive: true, tasks: 3 };
 * assert.equal(stats.tasks, 3);
 * ```
 */
export interface WorkerStats {
  /** The worker's id, unique within the pool. */
  id: number;
  /** Milliseconds the worker has spent running at least one task. */
  busyMs: number;
  /** Whether the worker is still running. */
  alive: boolean;
  /** Tasks the worker has settled. */
  tasks: number;
}

/**
 * Options for {@linkcode Metrics}.
 *
 * @example A metrics instance on a controlled clock
 * ```ts
 * import { Metrics } from "@sluice/sluice";
 * import { type MetricsOptions } from "@sluice/sluice/metrics";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const options: MetricsOptions = { clock: () => now, rateWindowS: 5 };
 * const metrics = new Metrics(options);
 * now = 1_000;
 * assert.equal(metrics.snapshot().uptime_ms, 1_000);
 * ```
 */
export interface MetricsOptions {
  /**
   * Monotonic clock in milliseconds, read on every depth change and every
   * enqueue/dequeue.
   *
   * @default {performance.now}
   */
  clock?: () => number;
  /**
   * Wall clock in epoch milliseconds, read only for the snapshot's
   * `timestamp`.
   *
   * @default {Date.now}
   */
  wallClock?: () => number;
  /**
   * Length of the sliding window behind the rates, in whole seconds (1 to
   * 3600).
   *
   * @default {10}
   */
  rateWindowS?: number;
  /**
   * Range and precision of the three latency histograms.
   *
   * @default {{}}
   */
  histogram?: HistogramOptions;
}

/**
 * One latency histogram in a {@linkcode MetricsSnapshot}, in milliseconds.
 * Every field is `0` while nothing has been recorded.
 */
export interface LatencySummary {
  /** Number of recorded tasks. */
  count: number;
  /** Exact sum, in milliseconds. */
  sum_ms: number;
  /** Exact mean, in milliseconds. */
  mean_ms: number;
  /** Exact minimum, in milliseconds. */
  min_ms: number;
  /** Exact maximum, in milliseconds. */
  max_ms: number;
  /** Median, in milliseconds, within the histogram's relative error. */
  p50_ms: number;
  /** 95th percentile, in milliseconds. */
  p95_ms: number;
  /** 99th percentile, in milliseconds. */
  p99_ms: number;
}

/** One worker's utilization in a {@linkcode MetricsSnapshot}. */
export interface WorkerUtilization {
  /** The worker's id. */
  id: number;
  /** Whether the worker is still running. */
  alive: boolean;
  /** Tasks the worker has settled. */
  tasks: number;
  /** Milliseconds spent busy. */
  busy_ms: number;
  /** `busy_ms / uptime_ms`, a ratio (not a percentage). */
  utilization: number;
}

/**
 * A point-in-time copy of every metric, as plain JSON. Fields appear in the
 * order below, which never changes between snapshots.
 *
 * - `timestamp`: ISO 8601 wall-clock time of the snapshot.
 * - `uptime_ms`: milliseconds since the `Metrics` was created.
 * - `counters`: each counter of {@linkcode COUNTERS}, a count since start.
 * - `gauges`: `queue_depth` (tasks waiting now), `queue_depth_max`,
 *   `queue_depth_mean` (time-weighted over the uptime), `in_flight` (worker
 *   slots occupied now), `workers_alive`, `running` (handlers started and
 *   not finished) and `claimed` (tasks this process holds whose handlers
 *   have not started: waiting for a slot, or just sent to one).
 * - `rates`: `window_s`, then `enqueued_per_s` and `dequeued_per_s` averaged
 *   over the last `window_s` seconds (or the uptime, if shorter).
 * - `latency`: `queue_wait` (enqueue → start), `run` (start → settle),
 *   `end_to_end` (enqueue → settle), each a {@linkcode LatencySummary} in ms.
 * - `utilization`: `overall` = total busy ms ÷ (uptime ms × workers alive),
 *   and per-worker `busy_ms / uptime_ms`; ratios that can exceed 1 when a
 *   worker runs several tasks at once and the pool counts each.
 */
export interface MetricsSnapshot {
  /** ISO 8601 wall-clock time of the snapshot. */
  timestamp: string;
  /** Milliseconds since the metrics were created. */
  uptime_ms: number;
  /** Counts since start, in {@linkcode COUNTERS} order. */
  counters: CounterValues;
  /** Current values, plus queue depth's maximum and time-weighted mean. */
  gauges: {
    /** Tasks waiting in the channel now. */
    queue_depth: number;
    /** Largest queue depth seen. */
    queue_depth_max: number;
    /** Queue depth averaged over time since start. */
    queue_depth_mean: number;
    /** Worker slots occupied now. */
    in_flight: number;
    /** Workers running now. */
    workers_alive: number;
    /** Handlers started and not finished. */
    running: number;
    /** Tasks held whose handlers have not started. */
    claimed: number;
  };
  /** Per-second rates over a sliding window. */
  rates: {
    /** Length of the window, in seconds. */
    window_s: number;
    /** Enqueued tasks per second over the window. */
    enqueued_per_s: number;
    /** Dequeued tasks per second over the window. */
    dequeued_per_s: number;
  };
  /** Latency histograms, in milliseconds. */
  latency: {
    /** Enqueue → start. */
    queue_wait: LatencySummary;
    /** Start → settle. */
    run: LatencySummary;
    /** Enqueue → settle. */
    end_to_end: LatencySummary;
  };
  /** Busy time relative to wall time. */
  utilization: {
    /** Total busy ms ÷ (uptime ms × workers alive). */
    overall: number;
    /** Per worker, ordered by id. */
    workers: WorkerUtilization[];
  };
}

const LATENCY_NAMES = ["queue_wait", "run", "end_to_end"] as const;
const LATENCY_FIELDS = [
  "count",
  "sum_ms",
  "mean_ms",
  "min_ms",
  "max_ms",
  "p50_ms",
  "p95_ms",
  "p99_ms",
] as const;

type Column = readonly [header: string, read: (s: MetricsSnapshot) => unknown];

const CSV_COLUMNS: readonly Column[] = [
  ["timestamp", (s) => s.timestamp],
  ["uptime_ms", (s) => s.uptime_ms],
  ...COUNTER_NAMES.map((name): Column => [
    `counters.${name}`,
    (s) => s.counters[name],
  ]),
  ["gauges.queue_depth", (s) => s.gauges.queue_depth],
  ["gauges.queue_depth_max", (s) => s.gauges.queue_depth_max],
  ["gauges.queue_depth_mean", (s) => s.gauges.queue_depth_mean],
  ["gauges.in_flight", (s) => s.gauges.in_flight],
  ["gauges.workers_alive", (s) => s.gauges.workers_alive],
  ["gauges.running", (s) => s.gauges.running],
  ["gauges.claimed", (s) => s.gauges.claimed],
  ["rates.window_s", (s) => s.rates.window_s],
  ["rates.enqueued_per_s", (s) => s.rates.enqueued_per_s],
  ["rates.dequeued_per_s", (s) => s.rates.dequeued_per_s],
  ...LATENCY_NAMES.flatMap((name) =>
    LATENCY_FIELDS.map((field): Column => [
      `latency.${name}.${field}`,
      (s) => s.latency[name][field],
    ])
  ),
  ["utilization.overall", (s) => s.utilization.overall],
  ["utilization.workers", (s) => s.utilization.workers.length],
];

function csvCell(value: unknown): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvHeader(): string {
  return CSV_COLUMNS.map(([header]) => header).join(",");
}

function csvRow(snapshot: MetricsSnapshot): string {
  return CSV_COLUMNS.map(([, read]) => csvCell(read(snapshot))).join(",");
}

function latencySummary(histogram: Histogram): LatencySummary {
  const { count, mean, min, max, p50, p95, p99 } = histogram.toJSON();
  return {
    count,
    sum_ms: histogram.sum,
    mean_ms: mean,
    min_ms: min,
    max_ms: max,
    p50_ms: p50,
    p95_ms: p95,
    p99_ms: p99,
  };
}

/** The per-worker series of the Prometheus export: name, type, help, value. */
const PER_WORKER_FAMILIES: ReadonlyArray<
  readonly [
    string,
    "gauge" | "counter",
    string,
    (w: WorkerUtilization) => number,
  ]
> = [
  [
    "sluice_worker_utilization",
    "gauge",
    "Busy time over wall time per worker, as a ratio.",
    (w) => w.utilization,
  ],
  [
    "sluice_worker_busy_seconds_total",
    "counter",
    "Seconds each worker spent busy.",
    (w) => w.busy_ms / 1000,
  ],
  [
    "sluice_worker_tasks_total",
    "counter",
    "Tasks each worker settled.",
    (w) => w.tasks,
  ],
  [
    "sluice_worker_alive",
    "gauge",
    "Whether each worker is running (1) or gone (0).",
    (w) => (w.alive ? 1 : 0),
  ],
];

/** Formats a sample value per the Prometheus text format. */
function promValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function promLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
    "\n",
    "\\n",
  );
}

function promHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

class PromWriter {
  #lines: string[] = [];

  family(name: string, type: string, help: string): void {
    this.#lines.push(
      `# HELP ${name} ${promHelp(help)}`,
      `# TYPE ${name} ${type}`,
    );
  }

  sample(name: string, value: number, labels = ""): void {
    this.#lines.push(
      `${name}${labels === "" ? "" : `{${labels}}`} ${promValue(value)}`,
    );
  }

  gauge(name: string, help: string, value: number): void {
    this.family(name, "gauge", help);
    this.sample(name, value);
  }

  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}

const LATENCY_HELP: { readonly [K in typeof LATENCY_NAMES[number]]: string } = {
  queue_wait: "Time from enqueue to start, in seconds.",
  run: "Time from start to settle, in seconds.",
  end_to_end: "Time from enqueue to settle, in seconds.",
};

/**
 * Renders a snapshot in the Prometheus text exposition format 0.0.4.
 * Durations are converted to seconds, as Prometheus expects.
 */
function prometheus(snapshot: MetricsSnapshot): string {
  const out = new PromWriter();
  for (const name of COUNTER_NAMES) {
    const metric = `sluice_${name}_total`;
    out.family(metric, "counter", COUNTER_HELP[name]);
    out.sample(metric, snapshot.counters[name]);
  }
  const { gauges, rates, latency, utilization } = snapshot;
  out.gauge(
    "sluice_uptime_seconds",
    "Seconds since the metrics were created.",
    snapshot.uptime_ms / 1000,
  );
  out.gauge(
    "sluice_queue_depth",
    "Tasks waiting in the channel.",
    gauges.queue_depth,
  );
  out.gauge(
    "sluice_queue_depth_max",
    "Largest queue depth seen.",
    gauges.queue_depth_max,
  );
  out.gauge(
    "sluice_queue_depth_mean",
    "Queue depth averaged over time since start.",
    gauges.queue_depth_mean,
  );
  out.gauge(
    "sluice_in_flight",
    "Worker slots occupied now.",
    gauges.in_flight,
  );
  out.gauge("sluice_workers_alive", "Workers running.", gauges.workers_alive);
  out.gauge(
    "sluice_tasks_running",
    "Handlers started and not finished.",
    gauges.running,
  );
  out.gauge(
    "sluice_tasks_claimed",
    "Tasks held whose handlers have not started.",
    gauges.claimed,
  );
  out.gauge(
    "sluice_enqueued_per_second",
    `Enqueued tasks per second over the last ${rates.window_s} s.`,
    rates.enqueued_per_s,
  );
  out.gauge(
    "sluice_dequeued_per_second",
    `Dequeued tasks per second over the last ${rates.window_s} s.`,
    rates.dequeued_per_s,
  );
  for (const name of LATENCY_NAMES) {
    const summary = latency[name];
    const metric = `sluice_${name}_seconds`;
    out.family(metric, "summary", LATENCY_HELP[name]);
    // An empty summary reports NaN quantiles, as Prometheus clients do.
    const empty = summary.count === 0;
    out.sample(metric, empty ? NaN : summary.p50_ms / 1000, 'quantile="0.5"');
    out.sample(metric, empty ? NaN : summary.p95_ms / 1000, 'quantile="0.95"');
    out.sample(metric, empty ? NaN : summary.p99_ms / 1000, 'quantile="0.99"');
    out.sample(`${metric}_sum`, summary.sum_ms / 1000);
    out.sample(`${metric}_count`, summary.count);
  }
  out.gauge(
    "sluice_utilization",
    "Total busy time over wall time times workers alive, as a ratio.",
    utilization.overall,
  );
  const workers = utilization.workers;
  const label = (id: number): string => `worker="${promLabel(String(id))}"`;
  for (const [name, type, help, value] of PER_WORKER_FAMILIES) {
    out.family(name, type, help);
    for (const w of workers) out.sample(name, value(w), label(w.id));
  }
  return out.toString();
}

function checkGauge(what: string, value: number): void {
  if (!(value >= 0 && value < Infinity)) {
    throw new RangeError(
      `Cannot set ${what}: expected a non-negative finite number, got ${value}`,
    );
  }
}

/**
 * Collects a queue's metrics. Recording is cheap and allocation-free:
 * counters are slots of one `Float64Array`, rates are per-second rings
 * advanced lazily (no timers), and latencies go to three
 * {@linkcode Histogram}s. Only {@linkcode Metrics.snapshot} and the
 * exporters allocate. Clock reads can cost more than the rest of a task's
 * recording, so the methods that need the time take the caller's `now`.
 *
 * The queue owns the counters and gauges; the pool reports per-worker busy
 * time through {@linkcode Metrics.setWorkerStatsProvider}.
 *
 * @example Recording one task and exporting
 * ```ts
 * import { Metrics } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const metrics = new Metrics();
 * const enqueuedAt = performance.now();
 * metrics.recordEnqueue(1, enqueuedAt);
 * const startedAt = performance.now();
 * metrics.recordDequeue(0, startedAt);
 * metrics.recordLatency(2, 30);
 * metrics.inc("succeeded");
 *
 * const snapshot = metrics.snapshot();
 * assert.equal(snapshot.counters.succeeded, 1);
 * assert.equal(snapshot.latency.end_to_end.max_ms, 32);
 * assert.match(metrics.toPrometheus(snapshot), /^sluice_succeeded_total 1$/m);
 * ```
 */
export class Metrics {
  #clock: () => number;
  #wallClock: () => number;
  #start: number;
  #counts = new Float64Array(COUNTER_NAMES.length);

  // Queue depth: the integral of depth over time since #start, closed up to
  // #depthSince; the open segment [#depthSince, now] is added on read.
  #depth = 0;
  #depthMax = 0;
  #depthArea = 0;
  #depthSince: number;
  #inFlight = 0;
  #workersAlive = 0;

  // Rates: two rings (enqueued, dequeued) of per-second counts, laid out as
  // [enqueued × window, dequeued × window]. #rateSecond is the second the
  // slot #rateSlot stands for; older slots hold the seconds before it.
  #window: number;
  #rates: Float64Array;
  #rateSecond: number;
  // Start of the second after #rateSecond: below it, nothing to advance.
  #nextSecondAt: number;
  #rateSlot = 0;

  #queueWait: Histogram;
  #run: Histogram;
  #endToEnd: Histogram;
  #workerStats: (() => readonly WorkerStats[]) | undefined;
  #taskStates: (() => TaskStateCounts) | undefined;

  /**
   * Creates metrics starting now (per `clock`), with every value at zero.
   *
   * @param options See {@linkcode MetricsOptions}.
   * @throws {TypeError} When `clock` or `wallClock` is not a function.
   * @throws {RangeError} When `rateWindowS` is not an integer from 1 to
   * 3600, or `histogram` is invalid.
   */
  constructor(options: MetricsOptions = {}) {
    const {
      clock = () => performance.now(),
      wallClock = Date.now,
      rateWindowS = 10,
      histogram = {},
    } = options;
    if (typeof clock !== "function") {
      throw new TypeError(
        `Cannot create metrics: option "clock" must be a function, got ${typeof clock}`,
      );
    }
    if (typeof wallClock !== "function") {
      throw new TypeError(
        `Cannot create metrics: option "wallClock" must be a function, got ${typeof wallClock}`,
      );
    }
    if (
      !Number.isInteger(rateWindowS) || rateWindowS < 1 || rateWindowS > 3600
    ) {
      throw new RangeError(
        `Cannot create metrics: option "rateWindowS" must be an integer from 1 to 3600, got ${rateWindowS}`,
      );
    }
    this.#clock = clock;
    this.#wallClock = wallClock;
    this.#window = rateWindowS;
    this.#rates = new Float64Array(2 * rateWindowS);
    this.#queueWait = new Histogram(histogram);
    this.#run = new Histogram(histogram);
    this.#endToEnd = new Histogram(histogram);
    this.#start = clock();
    this.#depthSince = this.#start;
    this.#rateSecond = Math.floor(this.#start / 1000);
    this.#nextSecondAt = (this.#rateSecond + 1) * 1000;
  }

  /**
   * Adds `n` to a counter. Counting `enqueued` or `dequeued` also feeds the
   * matching rate and reads the clock once; on the hot path prefer
   * {@linkcode Metrics.recordEnqueue} and {@linkcode Metrics.recordDequeue},
   * which take the caller's timestamp.
   *
   * @param name The counter, a key of {@linkcode COUNTERS}.
   * @param n How much to add; a non-negative number.
   * @throws {TypeError} When `name` is not a counter.
   * @throws {RangeError} When `n` is negative or not a number.
   *
   * @example Counting a rejection
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.inc("rejected", 2);
   * assert.equal(metrics.counter("rejected"), 2);
   * ```
   */
  inc(name: CounterName, n: number = 1): void {
    const slot: number | undefined = COUNTERS[name];
    if (slot === undefined) {
      throw new TypeError(`Cannot count: unknown counter "${name}"`);
    }
    if (!(n >= 0 && n < Infinity)) {
      throw new RangeError(
        `Cannot count ${name}: expected a non-negative finite number, got ${n}`,
      );
    }
    this.#counts[slot]! += n;
    // enqueued (0) and dequeued (1) own the two rate rings.
    if (slot <= 1) this.#countRate(slot, n, this.#clock());
  }

  #countRate(ring: number, n: number, now: number): void {
    this.#advance(now);
    this.#rates[ring * this.#window + this.#rateSlot]! += n;
  }

  /**
   * Records one accepted task: counts `enqueued`, feeds the enqueue rate and
   * sets the queue depth. The hot-path form of `inc("enqueued")` plus
   * {@linkcode Metrics.setDepth}: pass the timestamp the queue already read
   * and the metrics read no clock at all.
   *
   * @param depth Tasks waiting now, including this one.
   * @param now The time of the enqueue, from the same clock as
   * `options.clock`; read from that clock when omitted.
   * @throws {RangeError} When `depth` is negative or not finite.
   *
   * @example Recording an enqueue
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.recordEnqueue(1, performance.now());
   * const snapshot = metrics.snapshot();
   * assert.equal(snapshot.counters.enqueued, 1);
   * assert.equal(snapshot.gauges.queue_depth, 1);
   * ```
   */
  recordEnqueue(depth: number, now: number = this.#clock()): void {
    checkGauge("queue depth", depth);
    this.#counts[COUNTERS.enqueued]! += 1;
    this.#countRate(COUNTERS.enqueued, 1, now);
    this.#setDepth(depth, now);
  }

  /**
   * Records one task handed to a worker: counts `dequeued`, feeds the
   * dequeue rate and sets the queue depth, like
   * {@linkcode Metrics.recordEnqueue}.
   *
   * @param depth Tasks still waiting after this one left.
   * @param now The time of the dequeue, from the same clock as
   * `options.clock`; read from that clock when omitted.
   * @throws {RangeError} When `depth` is negative or not finite.
   *
   * @example Recording a dequeue
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.recordEnqueue(1);
   * metrics.recordDequeue(0);
   * const snapshot = metrics.snapshot();
   * assert.equal(snapshot.counters.dequeued, 1);
   * assert.equal(snapshot.gauges.queue_depth_max, 1);
   * ```
   */
  recordDequeue(depth: number, now: number = this.#clock()): void {
    checkGauge("queue depth", depth);
    this.#counts[COUNTERS.dequeued]! += 1;
    this.#countRate(COUNTERS.dequeued, 1, now);
    this.#setDepth(depth, now);
  }

  /**
   * Reads a counter.
   *
   * @param name The counter, a key of {@linkcode COUNTERS}.
   * @returns Its count since start.
   * @throws {TypeError} When `name` is not a counter.
   *
   * @example Reading a counter
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Metrics().counter("failed_transient"), 0);
   * ```
   */
  counter(name: CounterName): number {
    const slot: number | undefined = COUNTERS[name];
    if (slot === undefined) {
      throw new TypeError(`Cannot read counter: unknown counter "${name}"`);
    }
    return this.#counts[slot]!;
  }

  #advance(now: number): void {
    if (now < this.#nextSecondAt) return;
    const second = Math.floor(now / 1000);
    const gap = second - this.#rateSecond;
    // gap < 0 only if the clock steps back; keep counting into the newest slot.
    if (gap <= 0) return;
    const window = this.#window;
    const rates = this.#rates;
    if (gap >= window) {
      rates.fill(0);
      this.#rateSlot = 0;
    } else {
      let slot = this.#rateSlot;
      for (let i = 0; i < gap; i++) {
        slot = slot + 1 === window ? 0 : slot + 1;
        rates[slot] = 0;
        rates[window + slot] = 0;
      }
      this.#rateSlot = slot;
    }
    this.#rateSecond = second;
    this.#nextSecondAt = (second + 1) * 1000;
  }

  #rate(ring: number, now: number): number {
    this.#advance(now);
    const window = this.#window;
    let sum = 0;
    for (let i = ring * window; i < (ring + 1) * window; i++) {
      sum += this.#rates[i]!;
    }
    const windowStart = (this.#rateSecond - window + 1) * 1000;
    const covered = now - Math.max(this.#start, windowStart);
    return covered > 0 ? (sum * 1000) / covered : 0;
  }

  /**
   * Sets the queue depth, updating its maximum and time-weighted mean.
   *
   * @param depth Tasks waiting now; a non-negative number.
   * @param now The time of the change, from the same clock as
   * `options.clock`; read from that clock when omitted.
   * @throws {RangeError} When `depth` is negative or not finite.
   *
   * @example Tracking depth
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.setDepth(3);
   * metrics.setDepth(1);
   * assert.equal(metrics.snapshot().gauges.queue_depth_max, 3);
   * ```
   */
  setDepth(depth: number, now: number = this.#clock()): void {
    checkGauge("queue depth", depth);
    this.#setDepth(depth, now);
  }

  #setDepth(depth: number, now: number): void {
    // A timestamp older than the last change (callers' clocks read out of
    // order) closes no area rather than a negative one.
    if (now > this.#depthSince) {
      this.#depthArea += this.#depth * (now - this.#depthSince);
      this.#depthSince = now;
    }
    this.#depth = depth;
    if (depth > this.#depthMax) this.#depthMax = depth;
  }

  /**
   * Sets the number of tasks running now.
   *
   * @param n A non-negative number.
   * @throws {RangeError} When `n` is negative or not finite.
   *
   * @example Setting in-flight tasks
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.setInFlight(4);
   * assert.equal(metrics.snapshot().gauges.in_flight, 4);
   * ```
   */
  setInFlight(n: number): void {
    checkGauge("in-flight count", n);
    this.#inFlight = n;
  }

  /**
   * Sets the number of workers running now.
   *
   * @param n A non-negative number.
   * @throws {RangeError} When `n` is negative or not finite.
   *
   * @example Setting live workers
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.setWorkersAlive(2);
   * assert.equal(metrics.snapshot().gauges.workers_alive, 2);
   * ```
   */
  setWorkersAlive(n: number): void {
    checkGauge("workers alive", n);
    this.#workersAlive = n;
  }

  /**
   * Records one settled task's latencies: queue wait, run time and their
   * sum as end-to-end time.
   *
   * @param waitMs Enqueue → start, in milliseconds.
   * @param runMs Start → settle, in milliseconds.
   * @throws {RangeError} When either is negative or not finite.
   *
   * @example Recording latencies
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.recordLatency(5, 20);
   * assert.equal(metrics.queueWait.max, 5);
   * assert.equal(metrics.runTime.max, 20);
   * assert.equal(metrics.endToEnd.max, 25);
   * ```
   */
  recordLatency(waitMs: number, runMs: number): void {
    // Validate both before recording either so the histograms stay in step.
    if (!(waitMs >= 0 && waitMs < Infinity && runMs >= 0 && runMs < Infinity)) {
      throw new RangeError(
        `Cannot record latency: expected non-negative finite numbers, got wait ${waitMs} ms and run ${runMs} ms`,
      );
    }
    this.#queueWait.record(waitMs);
    this.#run.record(runMs);
    this.#endToEnd.record(waitMs + runMs);
  }

  /** The queue-wait histogram (enqueue → start), in milliseconds. */
  get queueWait(): Histogram {
    return this.#queueWait;
  }

  /** The run-time histogram (start → settle), in milliseconds. */
  get runTime(): Histogram {
    return this.#run;
  }

  /** The end-to-end histogram (enqueue → settle), in milliseconds. */
  get endToEnd(): Histogram {
    return this.#endToEnd;
  }

  /**
   * Sets where per-worker busy time comes from. The provider is called on
   * every {@linkcode Metrics.snapshot}; entries with the same id are summed.
   *
   * @param provider Returns one {@linkcode WorkerStats} per worker, or
   * `undefined` to stop reporting utilization.
   * @throws {TypeError} When `provider` is neither a function nor undefined.
   *
   * @example Reporting utilization
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * let now = 0;
   * const metrics = new Metrics({ clock: () => now });
   * metrics.setWorkerStatsProvider(() => [
   *   { id: 0, busyMs: 500, alive: true, tasks: 5 },
   *   { id: 1, busyMs: 250, alive: true, tasks: 2 },
   * ]);
   * metrics.setWorkersAlive(2);
   * now = 1_000;
   * const { utilization } = metrics.snapshot();
   * assert.equal(utilization.overall, 0.375);
   * assert.equal(utilization.workers[0]?.utilization, 0.5);
   * ```
   */
  setWorkerStatsProvider(
    provider: (() => readonly WorkerStats[]) | undefined,
  ): void {
    if (provider !== undefined && typeof provider !== "function") {
      throw new TypeError(
        `Cannot set worker stats provider: expected a function or undefined, got ${typeof provider}`,
      );
    }
    this.#workerStats = provider;
  }

  /**
   * Sets where the `running` and `claimed` gauges come from; called on
   * every {@linkcode Metrics.snapshot}.
   *
   * @param provider Returns the counts, or `undefined` to report zeros.
   * @throws {TypeError} When `provider` is neither a function nor undefined.
   *
   * @example Reporting task states
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.setTaskStateProvider(() => ({ running: 2, claimed: 5 }));
   * assert.equal(metrics.snapshot().gauges.claimed, 5);
   * ```
   */
  setTaskStateProvider(
    provider: (() => TaskStateCounts) | undefined,
  ): void {
    if (provider !== undefined && typeof provider !== "function") {
      throw new TypeError(
        `Cannot set task state provider: expected a function or undefined, got ${typeof provider}`,
      );
    }
    this.#taskStates = provider;
  }

  #utilization(uptimeMs: number): MetricsSnapshot["utilization"] {
    const stats = this.#workerStats?.() ?? [];
    const byId = new Map<number, WorkerUtilization>();
    let busy = 0;
    for (const s of stats) {
      busy += s.busyMs;
      const seen = byId.get(s.id);
      if (seen === undefined) {
        byId.set(s.id, {
          id: s.id,
          alive: s.alive,
          tasks: s.tasks,
          busy_ms: s.busyMs,
          utilization: 0,
        });
      } else {
        seen.alive ||= s.alive;
        seen.tasks += s.tasks;
        seen.busy_ms += s.busyMs;
      }
    }
    const workers = [...byId.values()].sort((a, b) => a.id - b.id);
    let alive = 0;
    for (const w of workers) {
      w.utilization = uptimeMs > 0 ? w.busy_ms / uptimeMs : 0;
      if (w.alive) alive++;
    }
    // Workers that died still contributed busy time; the pool's size is the
    // number alive now, or every reported worker if none is alive.
    const size = alive > 0 ? alive : workers.length;
    const overall = uptimeMs > 0 && size > 0 ? busy / (uptimeMs * size) : 0;
    return { overall, workers };
  }

  /**
   * Copies every metric into a plain object; see
   * {@linkcode MetricsSnapshot} for the schema and units.
   *
   * @returns A new snapshot, safe to `JSON.stringify`.
   * @throws {Error} Whatever the worker stats provider throws.
   *
   * @example Taking a snapshot
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * let now = 0;
   * const metrics = new Metrics({ clock: () => now });
   * metrics.setDepth(4);
   * now = 500;
   * metrics.setDepth(0);
   * now = 1_000;
   * assert.equal(metrics.snapshot().gauges.queue_depth_mean, 2);
   * ```
   */
  snapshot(): MetricsSnapshot {
    const now = this.#clock();
    const uptime = now - this.#start;
    const states = this.#taskStates?.();
    const area = this.#depthArea + this.#depth * (now - this.#depthSince);
    const counters = {} as CounterValues;
    for (let i = 0; i < COUNTER_NAMES.length; i++) {
      counters[COUNTER_NAMES[i]!] = this.#counts[i]!;
    }
    return {
      timestamp: new Date(this.#wallClock()).toISOString(),
      uptime_ms: uptime,
      counters,
      gauges: {
        queue_depth: this.#depth,
        queue_depth_max: this.#depthMax,
        queue_depth_mean: uptime > 0 ? area / uptime : this.#depth,
        in_flight: this.#inFlight,
        workers_alive: this.#workersAlive,
        running: states?.running ?? 0,
        claimed: states?.claimed ?? 0,
      },
      rates: {
        window_s: this.#window,
        enqueued_per_s: this.#rate(0, now),
        dequeued_per_s: this.#rate(1, now),
      },
      latency: {
        queue_wait: latencySummary(this.#queueWait),
        run: latencySummary(this.#run),
        end_to_end: latencySummary(this.#endToEnd),
      },
      utilization: this.#utilization(uptime),
    };
  }

  /**
   * The CSV header matching {@linkcode Metrics.toCsvRow}: `timestamp`,
   * `uptime_ms`, `counters.*`, `gauges.*`, `rates.*`, `latency.<name>.*`,
   * `utilization.overall` and `utilization.workers` (the worker count), in
   * an order that never changes.
   *
   * @returns The header line, without a line break.
   *
   * @example Reading the header
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const header = new Metrics().toCsvHeader();
   * assert.ok(header.startsWith("timestamp,uptime_ms,counters.enqueued,"));
   * ```
   */
  toCsvHeader(): string {
    return csvHeader();
  }

  /**
   * Flattens one snapshot into a CSV row, columns as in
   * {@linkcode Metrics.toCsvHeader}.
   *
   * @param snapshot A snapshot, from this or any `Metrics`.
   * @returns The row, without a line break.
   *
   * @example Writing a row
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * const row = metrics.toCsvRow(metrics.snapshot());
   * assert.equal(row.split(",").length, metrics.toCsvHeader().split(",").length);
   * ```
   */
  toCsvRow(snapshot: MetricsSnapshot): string {
    return csvRow(snapshot);
  }

  /**
   * Renders snapshots as a CSV document: the header, then one row each.
   *
   * @param snapshots Snapshots in the order to write them.
   * @returns The document, each line ending in `\n`.
   *
   * @example A CSV of two snapshots
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * const csv = Metrics.csv([metrics.snapshot(), metrics.snapshot()]);
   * assert.equal(csv.trimEnd().split("\n").length, 3);
   * ```
   */
  static csv(snapshots: readonly MetricsSnapshot[]): string {
    let out = csvHeader() + "\n";
    for (const snapshot of snapshots) out += csvRow(snapshot) + "\n";
    return out;
  }

  /**
   * Renders metrics in the Prometheus text exposition format 0.0.4: every
   * family with `# HELP` and `# TYPE`, names prefixed `sluice_`, counters
   * ending `_total`, latencies as summaries in seconds with quantiles 0.5,
   * 0.95 and 0.99 (NaN while empty) plus `_sum` and `_count`, and per-worker
   * series labelled `worker`.
   *
   * @param snapshot What to render; a fresh snapshot by default.
   * @returns The exposition text, ending in a line break.
   * @throws {Error} Whatever the worker stats provider throws, when no
   * snapshot is given.
   *
   * @example Exposing a counter
   * ```ts
   * import { Metrics } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const metrics = new Metrics();
   * metrics.inc("enqueued", 3);
   * const text = metrics.toPrometheus();
   * assert.match(text, /^# TYPE sluice_enqueued_total counter$/m);
   * assert.match(text, /^sluice_enqueued_total 3$/m);
   * ```
   */
  toPrometheus(snapshot: MetricsSnapshot = this.snapshot()): string {
    return prometheus(snapshot);
  }
}
