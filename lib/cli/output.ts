/**
 * Where the CLI writes: stdout for results, stderr for errors and progress.
 * A reader that closes stdout early (`cli.ts export … | head`) ends the
 * command quietly through {@linkcode OutputClosedError}; colours follow
 * `NO_COLOR` and whether stdout is a terminal; text read from the store is
 * made safe for a terminal by {@linkcode terminalText}.
 *
 * @module
 */

const encoder = new TextEncoder();

/** A stream the CLI writes to. */
export interface OutputStream {
  /** Writes bytes synchronously; returns how many were written. */
  writeSync(bytes: Uint8Array): number;
  /** Whether the stream is a terminal. */
  isTerminal(): boolean;
}

/**
 * Stdout was closed by its reader. The command stops writing and exits
 * 0 without a message: the reader took what it wanted.
 */
export class OutputClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param options `cause` is the write's error.
   */
  constructor(options?: ErrorOptions) {
    super("Cannot write to stdout: the reader closed it", options);
    this.name = "OutputClosedError";
  }
}

/** The most text, in bytes, encoded into {@linkcode scratch}. */
const SCRATCH_LIMIT = 1 << 18;

/**
 * Reused for the bytes of every write that fits. Commands that print much
 * (a million ids) write it in pieces of up to 64 KiB; a new buffer for
 * each piece lived outside the V8 heap until a collection found it dead,
 * and they piled up in between.
 */
let scratch = new Uint8Array(0);

/** `text` as UTF-8, in {@linkcode scratch} when it fits there. */
function encode(text: string): Uint8Array {
  // encodeInto writes at most 3 bytes per UTF-16 unit.
  const most = text.length * 3;
  if (most > SCRATCH_LIMIT) return encoder.encode(text);
  if (scratch.length < most) {
    scratch = new Uint8Array(Math.min(SCRATCH_LIMIT, Math.max(most, 4096)));
  }
  return scratch.subarray(0, encoder.encodeInto(text, scratch).written);
}

function writeAll(stream: OutputStream, text: string): void {
  const bytes = encode(text);
  let written = 0;
  while (written < bytes.length) {
    written += stream.writeSync(bytes.subarray(written));
  }
}

/**
 * Writes `text` to stdout.
 *
 * @param text What to write.
 * @throws {OutputClosedError} When the reader has closed stdout.
 */
export function out(text: string): void {
  try {
    writeAll(Deno.stdout, text);
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) {
      throw new OutputClosedError({ cause: error });
    }
    throw error;
  }
}

/**
 * Writes `text` to stderr. A closed stderr is ignored: there is no one
 * left to tell.
 *
 * @param text What to write.
 */
export function err(text: string): void {
  try {
    writeAll(Deno.stderr, text);
  } catch {
    // Nowhere to report it.
  }
}

/**
 * Whether `stream` is a terminal; `false` when it cannot tell.
 *
 * @param stream The stream.
 * @returns Whether it is a terminal.
 */
export function isTerminal(stream: { isTerminal(): boolean }): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

/** Wraps text in an SGR colour code, or returns it unchanged. */
export type Paint = (code: string, text: string) => string;

/**
 * The colouring for stdout: SGR codes when stdout is a terminal and
 * `NO_COLOR` is not set, nothing otherwise.
 *
 * @returns The painter.
 */
export function colors(): Paint {
  const on = !Deno.noColor && isTerminal(Deno.stdout);
  return (code, text) => on ? `\x1b[${code}m${text}\x1b[0m` : text;
}

const VISIBLE_ESCAPES: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

// C0 controls, DEL, C1 controls, and the bidirectional overrides and
// isolates, which reorder what follows them on the line.
const CONTROL =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes stored text (an error message, a payload, a task type) safe to
 * print on a terminal on one line: newlines, carriage returns and tabs
 * become `\n`, `\r` and `\t`; every other control character (escape
 * sequences included) and the bidirectional controls are removed.
 *
 * @param text Text as stored.
 * @returns The text, one line, without control characters.
 */
export function terminalText(text: string): string {
  return text.replace(CONTROL, (c) => VISIBLE_ESCAPES[c] ?? "");
}

/** A CSV column: its header and how to read it from a row. */
export type CsvColumn<T> = readonly [header: string, read: (row: T) => unknown];

/**
 * One CSV field: empty for `null` and `undefined`, quoted when it holds a
 * comma, quote or line break.
 *
 * @param value The value.
 * @returns The field.
 */
export function csvField(value: unknown): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A CSV header line.
 *
 * @param columns The columns.
 * @returns The line, with its newline.
 */
export function csvHeader<T>(columns: ReadonlyArray<CsvColumn<T>>): string {
  return columns.map(([name]) => name).join(",") + "\n";
}

/**
 * A CSV row.
 *
 * @param columns The columns.
 * @param row The values.
 * @returns The line, with its newline.
 */
export function csvRow<T>(
  columns: ReadonlyArray<CsvColumn<T>>,
  row: T,
): string {
  return columns.map(([, read]) => csvField(read(row))).join(",") + "\n";
}
