/**
 * Task files, as `run --tasks` and `submit --file` read them: a JSON array
 * of `{ "image_key", "size" }` objects (type `image.variant`) or of
 * `{ "type", "payload"?, "idempotencyKey"?, "maxAttempts"?, "runAt"?,
 * "queue"?, "priority"? }` objects, `runAt` in epoch ms or as an ISO 8601
 * time with its zone.
 * `run` reads a file whole; `submit` streams it, a batch at a time.
 *
 * @module
 */
import type { TaskInput } from "../queue/types.ts";
import { parseIsoTime } from "./config.ts";

function toTaskInput(item: unknown, index: number): TaskInput {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new Error(`Cannot read task ${index}: expected an object`);
  }
  const record = item as Record<string, unknown>;
  if (typeof record["type"] === "string") {
    const task: TaskInput = { type: record["type"] };
    if ("payload" in record) task.payload = record["payload"];
    if (typeof record["idempotencyKey"] === "string") {
      task.idempotencyKey = record["idempotencyKey"];
    }
    if (typeof record["maxAttempts"] === "number") {
      task.maxAttempts = record["maxAttempts"];
    }
    if ("runAt" in record) task.runAt = runAtOf(record["runAt"], index);
    // Checked, with the task's index, when the task is submitted.
    if ("queue" in record) task.queue = record["queue"] as string;
    if ("priority" in record) task.priority = record["priority"] as number;
    return task;
  }
  if (
    typeof record["image_key"] === "string" &&
    typeof record["size"] === "string"
  ) {
    return { type: "image.variant", payload: record };
  }
  throw new Error(
    `Cannot read task ${index}: expected { type, payload } or { image_key, size }`,
  );
}

/** A task's `runAt`: epoch ms, or an ISO 8601 time that names its zone. */
function runAtOf(value: unknown, index: number): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  const ms = typeof value === "string" ? parseIsoTime(value) : null;
  if (ms !== null && !Number.isNaN(ms)) return ms;
  throw new Error(
    `Cannot read task ${index}: runAt must be epoch ms or an ISO 8601 time with its zone (2026-12-01T09:00:00Z), got ${
      JSON.stringify(value)
    }`,
  );
}

/**
 * Reads a task file.
 *
 * @param path The file.
 * @returns Its tasks, in order.
 * @throws {Error} When it cannot be read, is not a JSON array, or an item is
 *   neither kind of task (naming its index).
 */
export async function readTaskFile(path: string): Promise<TaskInput[]> {
  const text = await Deno.readTextFile(path);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `Cannot read task file ${path}: ${(error as Error).message}`,
    );
  }
  if (!Array.isArray(data)) {
    throw new Error(`Cannot read task file ${path}: expected a JSON array`);
  }
  return data.map(toTaskInput);
}

/**
 * Bytes read at a time. The text of a read stays alive until the scanner
 * is past it: 16 KiB rather than the 64 KiB pieces of the file's stream
 * leaves less of it for each scavenge to copy.
 */
const READ_SIZE = 16 * 1024;

const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/**
 * Where the scanner of a task file stands: before the array, between
 * items, inside an item, or past the array.
 */
type ScanState = "start" | "item" | "between" | "end";

/**
 * Reads a task file a batch at a time, holding one batch and the text of
 * one item, whatever the file's size: the array is split into its items
 * by tracking nesting and strings, and each item is parsed on its own.
 * The errors are those of {@linkcode readTaskFile}, thrown when the
 * scanner gets to the fault: the batches before it have been yielded.
 *
 * @param path The file.
 * @param size Tasks per batch.
 * @returns The tasks, in order, `size` at a time (the last batch may be
 *   shorter; an empty array yields nothing).
 * @throws {Error} When the file cannot be read, is not a JSON array, or an
 *   item is neither kind of task (naming its index).
 */
export async function* streamTaskFile(
  path: string,
  size: number,
): AsyncGenerator<TaskInput[]> {
  const fail = (reason: string): never => {
    throw new Error(`Cannot read task file ${path}: ${reason}`);
  };
  let state: ScanState = "start";
  let batch: TaskInput[] = [];
  let index = 0;
  // The current item: its text so far (pieces of earlier chunks), its
  // nesting depth and whether the scanner is inside one of its strings.
  let pieces: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  const finishItem = (text: string): void => {
    let item: unknown;
    try {
      item = JSON.parse(text);
    } catch (error) {
      fail(`task ${index} is not JSON: ${(error as Error).message}`);
    }
    batch.push(toTaskInput(item, index++));
  };
  using file = await Deno.open(path);
  const decoder = new TextDecoder();
  const bytes = new Uint8Array(READ_SIZE);
  for (let ended = false; !ended;) {
    const n = await file.read(bytes);
    ended = n === null;
    const chunk = ended
      ? decoder.decode()
      : decoder.decode(bytes.subarray(0, n!), { stream: true });
    let from = 0; // where the current item starts in this chunk
    for (let i = 0; i < chunk.length; i++) {
      const code = chunk.charCodeAt(i);
      if (state === "item") {
        if (inString) {
          if (escaped) escaped = false;
          else if (code === BACKSLASH) escaped = true;
          else if (code === QUOTE) inString = false;
        } else if (code === QUOTE) {
          inString = true;
        } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
          depth++;
        } else if (
          depth > 0 && (code === CLOSE_BRACE || code === CLOSE_BRACKET)
        ) {
          depth--;
        } else if (depth === 0 && (code === COMMA || code === CLOSE_BRACKET)) {
          pieces.push(chunk.slice(from, i));
          const text = pieces.join("");
          pieces = [];
          if (text.trim() === "") fail(`task ${index} is empty`);
          finishItem(text);
          state = code === COMMA ? "between" : "end";
          if (batch.length === size) {
            yield batch;
            batch = [];
          }
        }
      } else if (isSpace(code)) {
        continue;
      } else if (state === "start") {
        if (code !== OPEN_BRACKET) fail("expected a JSON array");
        state = "between";
        // An empty array: `]` right after `[`.
        let j = i + 1;
        while (j < chunk.length && isSpace(chunk.charCodeAt(j))) j++;
        if (j < chunk.length && chunk.charCodeAt(j) === CLOSE_BRACKET) {
          state = "end";
          i = j;
        }
      } else if (state === "between") {
        if (code === CLOSE_BRACKET && index === 0) {
          state = "end";
          continue;
        }
        state = "item";
        from = i;
        depth = 0;
        inString = false;
        escaped = false;
        i--; // scan this character as the item's first
      } else {
        fail("unexpected text after the array");
      }
    }
    if (state === "item") pieces.push(chunk.slice(from));
  }
  if (state === "start") fail("expected a JSON array");
  if ((state as ScanState) !== "end") fail("the array is not closed");
  if (batch.length > 0) yield batch;
}
