/**
 * The rule for what a handler may report with `ctx.progress` and
 * `ctx.checkpoint`: plain JSON data that every store holds as it is
 * (PostgreSQL's `jsonb` included), of at most {@linkcode MAX_STATE_BYTES}
 * bytes of JSON. Checked in the worker, so a bad value is refused at the
 * handler's call and never reaches a commit batch.
 *
 * @module
 */
import { type JsonRule, serializeJson } from "../store/_json.ts";

/** The largest progress value or checkpoint, in bytes of UTF-8 JSON. */
export const MAX_STATE_BYTES = 4096;

/** What `jsonb` refuses beyond plain JSON, refused here for every store alike. */
const PORTABLE_RULE: JsonRule = {
  refuse: /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i,
  reason:
    "it contains U+0000 or a lone surrogate, which PostgreSQL cannot hold",
};

const encoder = new TextEncoder();

/**
 * The JSON text of a progress value or checkpoint.
 *
 * @param value What the handler passed.
 * @param action What was being done, for the message ("report progress").
 * @param id The task's id.
 * @param what The value's name in the message ("progress", "state").
 * @returns The JSON text.
 * @throws {TypeError} When `value` is not plain JSON data (or is
 *   `undefined`).
 * @throws {RangeError} When its JSON is longer than
 *   {@linkcode MAX_STATE_BYTES} bytes.
 */
export function serializeState(
  value: unknown,
  action: string,
  id: string,
  what: string,
): string {
  const text = serializeJson(value, action, id, what, false, PORTABLE_RULE)!;
  // UTF-8 takes at least one byte per UTF-16 unit and at most three, so
  // only text in between is encoded to be measured.
  if (text.length * 3 <= MAX_STATE_BYTES) return text;
  const bytes = text.length > MAX_STATE_BYTES
    ? text.length
    : encoder.encode(text).length;
  if (bytes > MAX_STATE_BYTES) {
    throw new RangeError(
      `Cannot ${action} ${id}: ${what} must be at most ${MAX_STATE_BYTES} bytes of JSON, got ${
        text.length > MAX_STATE_BYTES ? "at least " : ""
      }${bytes}`,
    );
  }
  return text;
}
