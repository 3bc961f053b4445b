/**
 * JSON text for the payloads and results a durable store keeps, refusing
 * every value that `JSON.stringify` would silently change, so that what a
 * handler reads back is what was submitted.
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

/** What the walk found that JSON cannot keep, and where. */
interface Problem {
  /** What the value is, e.g. `"Map"` or `"NaN"`. */
  what: string;
  /** Keys and indexes from the root to the value, innermost last. */
  path: (string | number)[];
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Names a non-plain object: its built-in class, or the user class it is an instance of. */
function describeObject(value: object): string {
  const constructor =
    (Object.getPrototypeOf(value) as { constructor?: unknown })
      ?.constructor;
  const name = typeof constructor === "function" && constructor.name !== ""
    ? constructor.name
    : undefined;
  if (name === undefined) return "object with a custom prototype";
  const builtin = (globalThis as Record<string, unknown>)[name] === constructor;
  return builtin ? name : `instance of ${name}`;
}

/** A string, boolean, finite number or null: fine without a call to `walk`. */
function isPlainLeaf(value: unknown): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    default:
      return value === null;
  }
}

function problem(what: string, key?: string | number): Problem {
  return { what, path: key === undefined ? [] : [key] };
}

/**
 * How deep the fast walk goes before it hands over to the walk that keeps
 * an ancestor stack: deeper than this is either a cycle or rare data.
 */
const FAST_DEPTH = 64;

/** The fast walk's answer when it went too deep to rule out a cycle. */
const TOO_DEEP: Problem = { what: "too deep", path: [] };

/**
 * Walks `value` depth first and returns the first part JSON would not keep
 * as it is, or `undefined`. Nothing is allocated while the value is fine;
 * the path is built only on the way out of a failure.
 *
 * Without `stack` (the fast walk, for the hot path) cycles are not
 * tracked: past {@linkcode FAST_DEPTH} levels it gives up with
 * {@linkcode TOO_DEEP}. With `stack` (the objects being walked, root
 * first) a cycle is reported where it closes, at any depth.
 *
 * @param value The value below the root.
 * @param stack The ancestors, or `null` for the fast walk.
 * @param depth How many objects enclose `value`.
 */
function walk(
  value: unknown,
  stack: object[] | null,
  depth: number,
): Problem | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : problem(String(value));
    case "bigint":
      return problem("BigInt");
    case "function":
      return problem("function");
    case "symbol":
      return problem("symbol");
    case "undefined":
      return problem("undefined");
  }
  if (value === null) return undefined;
  const object = value as object;
  if (stack === null) {
    if (depth > FAST_DEPTH) return TOO_DEEP;
  } else if (stack.includes(object)) {
    return problem("cycle");
  }
  const prototype = Object.getPrototypeOf(object);
  let found: Problem | undefined;
  stack?.push(object);
  if (prototype === Array.prototype && Array.isArray(object)) {
    const array = object as unknown[];
    for (let i = 0; i < array.length; i++) {
      const item = array[i];
      if (item === undefined) {
        found = problem(i in array ? "undefined" : "array hole", i);
        break;
      }
      if (isPlainLeaf(item)) continue;
      found = walk(item, stack, depth + 1);
      if (found !== undefined) {
        if (found !== TOO_DEEP) found.path.push(i);
        break;
      }
    }
  } else if (prototype === Object.prototype || prototype === null) {
    const record = object as Record<string, unknown>;
    for (const key in record) {
      const item = record[key];
      // JSON drops an undefined property; reading it back gives undefined
      // either way, so it is kept.
      if (item === undefined || isPlainLeaf(item)) continue;
      found = walk(item, stack, depth + 1);
      if (found !== undefined) {
        if (found !== TOO_DEEP) found.path.push(key);
        break;
      }
    }
  } else {
    found = problem(describeObject(object));
  }
  stack?.pop();
  return found;
}

/** Formats a path as JavaScript would write the access, from `root`. */
function formatPath(root: string, path: (string | number)[]): string {
  let text = root;
  // The walk pushes keys innermost first.
  for (let i = path.length - 1; i >= 0; i--) {
    const key = path[i]!;
    text += typeof key === "number"
      ? `[${key}]`
      : IDENTIFIER.test(key)
      ? `.${key}`
      : `[${JSON.stringify(key)}]`;
  }
  return text;
}

/**
 * Checks that `value` is plain JSON data: `null`, booleans, strings,
 * finite numbers, arrays (no holes, no `undefined`) and plain objects
 * (prototype `Object.prototype` or `null`), with no cycle. Refused: `NaN`
 * and the infinities, BigInt, functions and symbols anywhere, `Map`,
 * `Set`, `Date`, `RegExp`, typed arrays, `ArrayBuffer` and any other class
 * instance. An `undefined` object property is allowed (JSON drops it; it
 * reads back as `undefined` either way).
 *
 * @param value The payload or result.
 * @param what The root's name in the message, `"payload"` or `"result"`.
 * @returns `undefined` when the value is fine, else a description such as
 *   `"Map at result.items"`.
 */
export function findNonJson(value: unknown, what: string): string | undefined {
  // Top-level strings are the cheap common case.
  if (typeof value === "string") return undefined;
  let found = walk(value, null, 0);
  // Deep data, or a cycle: walk again keeping the ancestors.
  if (found === TOO_DEEP) found = walk(value, [], 0);
  return found === undefined
    ? undefined
    : `${found.what} at ${formatPath(what, found.path)}`;
}

/**
 * Serializes `value` for storage, refusing anything JSON would not keep
 * faithfully (see {@linkcode findNonJson}) and anything `rule` refuses. A
 * top-level `undefined` is refused too, except as a result (a handler that
 * returns nothing), stored as SQL NULL.
 *
 * @param value The payload or result.
 * @param action What was being done, for the message ("store task").
 * @param id The task's id, for the message, when known.
 * @param what `"payload"` or `"result"`.
 * @param allowUndefined Store `undefined` as `null` instead of refusing it.
 * @param rule A backend's further rule.
 * @returns The JSON text, or `null` for an allowed `undefined`.
 * @throws {TypeError} "Cannot <action> <id>: <what> is not plain JSON data
 *   (<problem> at <path>)", or "… is not JSON-serializable (<reason>)"
 *   when `rule` refuses the text.
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
  const subject = id === undefined ? "" : ` ${id}`;
  const found = findNonJson(value, what);
  if (found !== undefined) {
    throw new TypeError(
      `Cannot ${action}${subject}: ${what} is not plain JSON data (${found})`,
    );
  }
  let text: string;
  try {
    // Cannot return undefined now: the value is plain JSON data.
    text = JSON.stringify(value);
  } catch (error) {
    // A getter or proxy that throws; the walk has ruled out the rest.
    throw new TypeError(
      `Cannot ${action}${subject}: ${what} is not JSON-serializable (${
        error instanceof Error ? error.message : String(error)
      })`,
      { cause: error },
    );
  }
  if (rule !== undefined && rule.refuse.test(text)) {
    throw new TypeError(
      `Cannot ${action}${subject}: ${what} is not JSON-serializable (${rule.reason})`,
    );
  }
  return text;
}
