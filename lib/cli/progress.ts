/**
 * A one-line progress display (count, rate, ETA) for terminals. It draws
 * only when its stream is a terminal, redraws at most every `intervalMs`,
 * and uses no timers, so it never keeps a process alive.
 *
 * @module
 */
import { isTerminal } from "./output.ts";

/** Where a {@linkcode Progress} writes. */
export interface ProgressStream {
  /** Writes bytes synchronously. */
  writeSync(bytes: Uint8Array): number;
  /** Whether the stream is a terminal. */
  isTerminal(): boolean;
}

/** Options for {@linkcode Progress}. */
export interface ProgressOptions {
  /**
   * Label at the start of the line.
   *
   * @default {""}
   */
  label?: string;
  /**
   * Total expected, or `0` when unknown (no ETA).
   *
   * @default {0}
   */
  total?: number;
  /**
   * The stream; nothing is drawn unless it is a terminal.
   *
   * @default {Deno.stderr}
   */
  stream?: ProgressStream;
  /**
   * Least time between redraws, ms.
   *
   * @default {100}
   */
  intervalMs?: number;
  /**
   * Monotonic clock, ms.
   *
   * @default {performance.now}
   */
  clock?: () => number;
  /**
   * More to show at the end of the line, read only when it is drawn (for
   * example the queue's running and claimed gauges).
   *
   * @default {undefined}
   */
  detail?: () => string;
}

const encoder = new TextEncoder();

/** Formats seconds as `1m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** A progress line on a terminal; silent otherwise. */
export class Progress implements Disposable {
  #label: string;
  #total: number;
  #stream: ProgressStream;
  #enabled: boolean;
  #intervalMs: number;
  #clock: () => number;
  #detail: (() => string) | undefined;
  #start: number;
  #lastDraw = -Infinity;
  #done = 0;
  #drawn = false;

  /**
   * Creates the display.
   *
   * @param options Label, total, stream, redraw interval, clock and detail.
   * @throws {RangeError} When `total` or `intervalMs` is negative.
   */
  constructor(options: ProgressOptions = {}) {
    const {
      label = "",
      total = 0,
      stream = Deno.stderr,
      intervalMs = 100,
      clock = () => performance.now(),
      detail,
    } = options;
    if (!(total >= 0)) {
      throw new RangeError(
        `Cannot create progress: total must be >= 0, got ${total}`,
      );
    }
    if (!(intervalMs >= 0)) {
      throw new RangeError(
        `Cannot create progress: intervalMs must be >= 0, got ${intervalMs}`,
      );
    }
    this.#label = label;
    this.#total = total;
    this.#stream = stream;
    this.#enabled = isTerminal(stream);
    this.#intervalMs = intervalMs;
    this.#clock = clock;
    this.#detail = detail;
    this.#start = clock();
  }

  /** Whether anything is drawn. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Count reported so far. */
  get done(): number {
    return this.#done;
  }

  /** Sets a new label and total and restarts the clock. */
  reset(label: string, total: number): void {
    this.#label = label;
    this.#total = total;
    this.#done = 0;
    this.#start = this.#clock();
    this.#lastDraw = -Infinity;
  }

  /**
   * Reports the count done so far; redraws when the interval has passed.
   *
   * @param done Items finished.
   */
  update(done: number): void {
    this.#done = done;
    if (!this.#enabled) return;
    const now = this.#clock();
    if (now - this.#lastDraw < this.#intervalMs && done !== this.#total) {
      return;
    }
    this.#lastDraw = now;
    this.#write(`\r\x1b[2K${this.line(now)}`);
    this.#drawn = true;
  }

  /** Adds one to the count. */
  tick(): void {
    this.update(this.#done + 1);
  }

  /**
   * The text of the line at `now`.
   *
   * @param now The clock reading.
   * @returns The line, without control characters.
   */
  line(now: number = this.#clock()): string {
    const seconds = Math.max(1e-9, (now - this.#start) / 1000);
    const rate = this.#done / seconds;
    const parts = [
      this.#label,
      this.#total > 0 ? `${this.#done}/${this.#total}` : `${this.#done}`,
      `${rate.toFixed(rate < 100 ? 1 : 0)}/s`,
    ];
    if (this.#total > 0) {
      const left = this.#total - this.#done;
      parts.push(
        `ETA ${rate > 0 ? formatDuration(left / rate) : "?"}`,
      );
    }
    if (this.#detail !== undefined) parts.push(this.#detail());
    return parts.filter((p) => p !== "").join("  ");
  }

  /** Clears the line, leaving the cursor at its start. */
  clear(): void {
    if (this.#enabled && this.#drawn) this.#write("\r\x1b[2K");
    this.#drawn = false;
  }

  /** Clears the line. */
  [Symbol.dispose](): void {
    this.clear();
  }

  #write(text: string): void {
    try {
      this.#stream.writeSync(encoder.encode(text));
    } catch {
      this.#enabled = false;
    }
  }
}
