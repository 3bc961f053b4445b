/**
 * `cli.ts monitor`: the status of a database, refreshed until the user
 * quits, with rates over the last few seconds.
 *
 * @module
 */
import { type Command, defineCommand, helpText } from "./command.ts";
import { describeDb, READ_KEYS, withStore } from "./open.ts";
import {
  colors,
  type CsvColumn,
  csvHeader,
  csvRow,
  isTerminal,
  out,
} from "./output.ts";
import { onStopSignals } from "./signals.ts";
import {
  formatStatus,
  readStatus,
  STATUS_COLUMNS,
  type StatusSnapshot,
} from "./snapshot.ts";

/** The window of the short-term rates, ms. */
const RATE_WINDOW_MS = 5_000;
const WINDOW = `${RATE_WINDOW_MS / 1000} s`;

const USAGE = helpText({
  usage: [
    "cli.ts monitor --db PATH|URL [--once] [--interval MS] [--format text|json|csv]",
  ],
  about: `
Shows the status (as "cli.ts status" does) every --interval ms, with rates
over the last ${WINDOW}: tasks succeeded and dead-lettered per second, from
the store's totals, which pruning does not lower (from the second refresh
on). The database is opened read-only.

On a terminal the screen is redrawn in place: press q or Ctrl-C to quit,
and the terminal is restored. Otherwise a frame is appended per refresh,
until "q" arrives on stdin (a pipe), or SIGINT or SIGTERM. Exit code 0
either way.`,
  options: [
    ["--once", "One frame, then exit"],
    ["--interval MS", "Refresh interval (default 1000)"],
    [
      "--format FORMAT",
      "text, json (one JSON line per refresh) or csv (a\nheader, then one row per refresh); default text",
    ],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/** Per-second rates over the last few seconds; `null` until two readings. */
interface Rates {
  /** Seconds the rates are measured over. */
  window_s: number | null;
  /** Tasks succeeded per second. */
  succeeded_per_s: number | null;
  /** Tasks dead-lettered per second. */
  dead_per_s: number | null;
}

/** A monitor frame: the status snapshot and the short-term rates. */
interface Frame extends StatusSnapshot {
  /** Rates over the last few seconds. */
  rates: Rates;
}

interface Reading {
  at: number;
  succeeded: number;
  dead: number;
}

/** Rates from the readings of the last {@linkcode RATE_WINDOW_MS}. */
class RateWindow {
  #readings: Reading[] = [];

  add(snapshot: StatusSnapshot, at: number): Rates {
    const readings = this.#readings;
    readings.push({ at, ...snapshot.totals });
    // Keep the newest reading at least the window old as the base.
    while (readings.length > 2 && readings[1]!.at <= at - RATE_WINDOW_MS) {
      readings.shift();
    }
    const base = readings[0]!;
    const seconds = (at - base.at) / 1000;
    if (readings.length < 2 || seconds <= 0) {
      return { window_s: null, succeeded_per_s: null, dead_per_s: null };
    }
    // Totals only grow, whatever is requeued or pruned meanwhile.
    const rate = (field: "succeeded" | "dead"): number =>
      (readings.at(-1)![field] - base[field]) / seconds;
    return {
      window_s: Number(seconds.toFixed(3)),
      succeeded_per_s: rate("succeeded"),
      dead_per_s: rate("dead"),
    };
  }
}

const FRAME_COLUMNS: ReadonlyArray<CsvColumn<Frame>> = [
  ...STATUS_COLUMNS,
  ["rates.window_s", (f) => f.rates.window_s],
  ["rates.succeeded_per_s", (f) => f.rates.succeeded_per_s],
  ["rates.dead_per_s", (f) => f.rates.dead_per_s],
];

function formatFrame(
  frame: Frame,
  how: { interactive: boolean; once: boolean },
): string[] {
  const { rates } = frame;
  const rate = (value: number | null): string =>
    value === null ? "-" : `${value.toFixed(1)}/s`;
  const lines = formatStatus(frame, colors());
  if (!how.once) {
    lines.push(
      `  ${`last ${WINDOW}`.padEnd(13)}${
        rates.window_s === null
          ? "  (rates from the next refresh)"
          : `  succeeded ${rate(rates.succeeded_per_s)}  dead ${
            rate(rates.dead_per_s)
          }`
      }`,
    );
  }
  if (how.interactive) lines.push("", "  Press q or Ctrl-C to quit.");
  return lines;
}

/**
 * Calls `quit` when q (or, in raw mode, Ctrl-C or Ctrl-D) is read from
 * stdin. On a terminal, stdin is put in raw mode so a key needs no Enter;
 * the returned function restores it.
 */
function watchKeys(quit: () => void, raw: boolean): () => void {
  if (raw) Deno.stdin.setRaw(true);
  const keys = new Set([0x71, 0x51, ...(raw ? [0x03, 0x04] : [])]);
  (async () => {
    const buffer = new Uint8Array(64);
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) return;
      if (buffer.subarray(0, n).some((byte) => keys.has(byte))) {
        quit();
        return;
      }
    }
  })().catch(() => {});
  return () => {
    if (raw) Deno.stdin.setRaw(false);
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** `cli.ts monitor`. */
export const monitor: Command = defineCommand({
  usage: USAGE,
  flags: {
    once: { type: "boolean" },
    interval: { type: "integer", min: 10, max: 3_600_000 },
  },
  config: READ_KEYS,
  formats: ["text", "json", "csv"],
  defaultFormat: "text",
  aliases: { export: { for: "format", use: "--format" } },
}, async (parsed) => {
  const once = parsed.boolean("once");
  const interval = parsed.integer("interval") ?? 1000;
  const format = parsed.format;
  const cfg = parsed.config;
  const interactive = format === "text" && !once &&
    isTerminal(Deno.stdout);
  return await withStore(cfg, "read", async (store) => {
    const quit = new AbortController();
    const stop = (): void => quit.abort();
    const removeSignals = once ? () => {} : onStopSignals(stop);
    // Keys come from a terminal only when the screen is ours too (a
    // background job reading its terminal would be stopped), or from a
    // pipe.
    const stdinTerminal = isTerminal(Deno.stdin);
    const restoreKeys = once || (stdinTerminal && !interactive)
      ? () => {}
      : watchKeys(stop, stdinTerminal);
    const rates = new RateWindow();
    // Hide the cursor while the screen is redrawn; shown again on the way out.
    if (interactive) out("\x1b[?25l\x1b[2J");
    try {
      for (let first = true; !quit.signal.aborted; first = false) {
        const snapshot = await readStatus(store, describeDb(cfg));
        const frame: Frame = {
          ...snapshot,
          rates: rates.add(snapshot, performance.now()),
        };
        if (format === "json") {
          out(JSON.stringify(frame) + "\n");
        } else if (format === "csv") {
          out(
            (first ? csvHeader(FRAME_COLUMNS) : "") +
              csvRow(FRAME_COLUMNS, frame),
          );
        } else if (interactive) {
          const lines = formatFrame(frame, { interactive, once }).map((l) =>
            `${l}\x1b[K`
          );
          out(`\x1b[H${lines.join("\r\n")}\x1b[J`);
        } else {
          out(
            (first ? "" : "\n") +
              formatFrame(frame, { interactive, once }).join("\n") + "\n",
          );
        }
        if (once) break;
        await pause(interval, quit.signal);
      }
    } finally {
      restoreKeys();
      removeSignals();
      if (interactive) out("\r\n\x1b[?25h");
    }
    return 0;
  });
});
