/**
 * Soak: does a queue that runs for weeks stay bounded? No-op tasks go
 * through `TaskQueue.open` with retention on, from a few producers that
 * each submit a batch and await its results, over and over. At every 10 %
 * of the run it samples RSS, heap used, the SQLite file and its WAL, the
 * tasks the store keeps, and the throughput over the last 10 %, then
 * prints a table and a verdict against issue 13's targets:
 *
 * - peak RSS at the end of the run within 10 % of the peak RSS at 10 % of
 *   it: the process's high-water mark (`VmHWM` of `/proc/self/status` on
 *   Linux), so a peak between two samples counts too (elsewhere, the
 *   largest sampled RSS against the first sample);
 * - SQLite file size flat (within 10 %) after the first retention window
 *   (from the first sample at which retention has pruned);
 * - throughput over the last 10 % within 10 % of the first 10 %.
 *
 * ```sh
 * deno run -A bench/soak.ts --store memory --tasks 10000000
 * deno run -A bench/soak.ts --store sqlite --tasks 2000000
 * ```
 *
 * Flags: `--store memory|sqlite`, `--tasks N`, `--producers N` (4),
 * `--batch N` tasks per submitMany (256), `--workers N` (2),
 * `--max-count N` succeeded tasks kept (the default retention: 100,000),
 * `--dir PATH` for the SQLite file (a temporary directory, removed after).
 * With `--v8-flags=--expose-gc` each sample is taken after a full GC, so
 * RSS and heap are not a point in the collector's cycle.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TaskQueue } from "../lib/queue/task_queue.ts";
import type { RetentionOptions } from "../lib/queue/types.ts";

const encoder = new TextEncoder();
function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    store: { type: "string", default: "memory" },
    tasks: { type: "string", default: "1000000" },
    producers: { type: "string", default: "4" },
    batch: { type: "string", default: "256" },
    workers: { type: "string", default: "2" },
    "max-count": { type: "string" },
    dir: { type: "string" },
  },
});

function count(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(
      `Cannot run soak: --${name} must be an integer >= 1, got ${text}`,
    );
  }
  return n;
}

const store = values.store;
if (store !== "memory" && store !== "sqlite") {
  throw new TypeError(
    `Cannot run soak: --store must be memory or sqlite, got ${store}`,
  );
}
const tasks = count("tasks", values.tasks);
const producers = count("producers", values.producers);
const batch = count("batch", values.batch);
const workers = count("workers", values.workers);
const retention: RetentionOptions = values["max-count"] === undefined ? {} : {
  succeeded: {
    maxAgeMs: 24 * 60 * 60 * 1000,
    maxCount: count("max-count", values["max-count"]),
  },
};

const gc = (globalThis as { gc?: () => void }).gc;
const tempDir = store === "sqlite" && values.dir === undefined
  ? await Deno.makeTempDir({ prefix: "sluice-soak-" })
  : undefined;
const dir = values.dir ?? tempDir;
const dbPath = dir === undefined ? undefined : `${dir}/soak.db`;

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

interface Sample {
  percent: number;
  done: number;
  seconds: number;
  rss: number;
  /** The process's peak RSS so far (`VmHWM`), or `null` where unknown. */
  hwm: number | null;
  heapUsed: number;
  db: number;
  wal: number;
  kept: number;
  pruned: number;
  /** Tasks per second since the previous sample. */
  rate: number;
}

const queue = await TaskQueue.open({
  ...(dbPath !== undefined && { db: dbPath }),
  workers,
  capacity: producers * batch,
  retention,
  logger: { level: "error" },
});
const samples: Sample[] = [];
const started = performance.now();
let done = 0;
let nextMark = 1;
let lastAt = started;
let lastDone = 0;
let sampling: Promise<void> = Promise.resolve();

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** Prints a row as soon as it is sampled, so a cut-short run still tells. */
function printRow(s: Sample): void {
  print(
    `| ${s.percent}% | ${s.done.toLocaleString("en-US")} | ${
      s.seconds.toFixed(0)
    } | ${mb(s.rss)} | ${s.hwm === null ? "n/a" : mb(s.hwm)} | ${
      mb(s.heapUsed)
    } | ${mb(s.db)} | ${mb(s.wal)} | ${s.kept.toLocaleString("en-US")} | ${
      s.pruned.toLocaleString("en-US")
    } | ${Math.round(s.rate)} |`,
  );
}

async function sample(percent: number): Promise<void> {
  const at = performance.now();
  const tasksSince = done - lastDone;
  const rate = tasksSince / ((at - lastAt) / 1000);
  lastAt = at;
  lastDone = done;
  gc?.();
  const { rss, heapUsed } = Deno.memoryUsage();
  const { counts } = await queue.store.status(Date.now());
  samples.push({
    percent,
    done,
    seconds: (at - started) / 1000,
    rss,
    hwm: peakRssSoFar(),
    heapUsed,
    db: dbPath === undefined ? 0 : fileSize(dbPath),
    wal: dbPath === undefined ? 0 : fileSize(`${dbPath}-wal`),
    kept: counts.succeeded,
    pruned: queue.metrics.counter("pruned"),
    rate,
  });
  printRow(samples.at(-1)!);
  // Not counted in the next interval's rate.
  lastAt = performance.now();
}

/** `VmHWM` of this process in bytes, or `null` where there is none. */
function peakRssSoFar(): number | null {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    return null;
  }
}

let next = 0;
async function produce(): Promise<void> {
  const input = Array.from({ length: batch }, () => ({ type: "noop" }));
  for (;;) {
    const n = Math.min(batch, tasks - next);
    if (n <= 0) return;
    next += n;
    const handles = await queue.submitMany(
      n === batch ? input : input.slice(0, n),
    );
    await Promise.all(handles.map((h) => h.result));
    done += n;
    while (nextMark <= 10 && done >= (tasks * nextMark) / 10) {
      const percent = nextMark * 10;
      nextMark++;
      // One sample at a time; the others keep producing meanwhile.
      sampling = sampling.then(() => sample(percent));
      await sampling;
    }
  }
}

print(
  `soak: ${store}, ${
    tasks.toLocaleString("en-US")
  } no-op tasks, ${producers} producers x ${batch}, ${workers} workers, retention ${
    JSON.stringify(retention)
  }${gc === undefined ? "" : ", GC before each sample"}`,
);
print(
  "| done | tasks | s | RSS MB | peak RSS MB | heap MB | db MB | wal MB | kept | pruned | tasks/s (last 10%) |",
);
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
try {
  await Promise.all(Array.from({ length: producers }, produce));
} finally {
  await queue.close();
  if (tempDir !== undefined) await Deno.remove(tempDir, { recursive: true });
}

const first = samples[0]!;
const last = samples.at(-1)!;
const verdict = (ok: boolean): string => ok ? "PASS" : "FAIL";
const sampledPeak = Math.max(...samples.map((s) => s.rss));
if (first.hwm !== null && last.hwm !== null) {
  print(
    `peak RSS ${mb(last.hwm)} MB at 100% vs ${mb(first.hwm)} MB at 10%: ${
      (last.hwm / first.hwm).toFixed(3)
    }x (target <= 1.10) ${verdict(last.hwm <= first.hwm * 1.1)}`,
  );
  print(
    `(sampled RSS: largest ${mb(sampledPeak)} MB vs ${
      mb(first.rss)
    } MB at 10%: ${(sampledPeak / first.rss).toFixed(3)}x)`,
  );
} else {
  print(
    `peak sampled RSS ${mb(sampledPeak)} MB vs ${mb(first.rss)} MB at 10%: ${
      (sampledPeak / first.rss).toFixed(3)
    }x (target <= 1.10) ${verdict(sampledPeak <= first.rss * 1.1)}`,
  );
}
if (dbPath !== undefined) {
  // The first retention window is over once retention has pruned.
  const after = samples.filter((s) => s.pruned > 0);
  if (after.length < 2) {
    print("SQLite file: retention never pruned before the last sample: n/a");
  } else {
    const base = after[0]!;
    const peak = Math.max(...after.map((s) => s.db + s.wal));
    print(
      `SQLite file + WAL peak ${mb(peak)} MB vs ${
        mb(base.db + base.wal)
      } MB at ${base.percent}% (first sample after pruning began): ${
        (peak / (base.db + base.wal)).toFixed(3)
      }x (target <= 1.10) ${verdict(peak <= (base.db + base.wal) * 1.1)}`,
    );
  }
}
print(
  `throughput last 10% ${Math.round(last.rate)}/s vs first 10% ${
    Math.round(first.rate)
  }/s: ${(last.rate / first.rate).toFixed(3)}x (target >= 0.90) ${
    verdict(last.rate >= first.rate * 0.9)
  }`,
);
print(
  `total ${((performance.now() - started) / 1000).toFixed(0)} s, ${
    last.pruned.toLocaleString("en-US")
  } pruned`,
);
