/**
 * JSON text for the payloads and results a durable store keeps.
 *
 * @module
 */

/** A further rule a backend puts on JSON text, e.g. what `jsonb` refuses. */
export interface JsonRule {
  /** Text matching this is refused. */
  refuse: RegExp;
  /** Why, for the error message. */
  reason: string;
}

/**
 * Serializes `value` for storage. `JSON.stringify` throws on BigInt and
 * cycles and returns `undefined` for a top-level `undefined`, function or
 * symbol; all of these are refused, except an `undefined` result (a
 * handler that returns nothing), stored as SQL NULL.
 *
 * @param value The payload or result.
 * @param action What was being done, for the message ("store task").
 * @param id The task's id, for the message, when known.
 * @param what `"payload"` or `"result"`.
 * @param allowUndefined Store `undefined` as `null` instead of refusing it.
 * @param rule A backend's further rule.
 * @returns The JSON text, or `null` for an allowed `undefined`.
 * @throws {TypeError} "Cannot <action> <id>: <what> is not JSON-serializable (<reason>)".
 */
export function serializeJson(
  value: unknown,
  action: string,
  id: string | undefined,
  what: string,
  allowUndefined = false,
  rule?: JsonRule,
): string | null {
  if (value === undefined && allowUndefined) return null;
  let text: string | undefined;
  let reason: string;
  try {
    text = JSON.stringify(value);
    reason = `top-level ${typeof value}`;
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  }
  if (typeof text === "string") {
    if (rule === undefined || !rule.refuse.test(text)) return text;
    reason = rule.reason;
  }
  const subject = id === undefined ? "" : ` ${id}`;
  throw new TypeError(
    `Cannot ${action}${subject}: ${what} is not JSON-serializable (${reason})`,
  );
}
