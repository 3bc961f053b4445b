/**
 * Whether a value can cross to a worker by `postMessage`, checked without
 * copying it where possible: common shapes (primitives, plain objects and
 * arrays of them, buffers) are walked; anything else is test-cloned.
 *
 * @module
 */

/** Walk at most this many values before falling back to a test clone. */
const CHECK_BUDGET = 1024;

/**
 * Reports whether `value` is structured-cloneable.
 *
 * @param value Any value.
 * @returns `true` when it can be posted to a worker.
 */
export function isCloneable(value: unknown): boolean {
  const ok = walk(value, { left: CHECK_BUDGET }, 0);
  if (ok !== undefined) return ok;
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/** True: cloneable; false: not; undefined: unsure (too big or unknown kind). */
function walk(
  value: unknown,
  budget: { left: number },
  depth: number,
): boolean | undefined {
  if (--budget.left < 0 || depth > 8) return undefined;
  switch (typeof value) {
    case "undefined":
    case "boolean":
    case "number":
    case "string":
    case "bigint":
      return true;
    case "symbol":
    case "function":
      return false;
  }
  if (value === null) return true;
  if (value instanceof ArrayBuffer) return !value.detached;
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer;
    return !(buffer instanceof ArrayBuffer && buffer.detached);
  }
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value)) {
    if (proto !== Array.prototype) return undefined;
    for (let i = 0; i < value.length; i++) {
      const ok = walk(value[i], budget, depth + 1);
      if (ok !== true) return ok;
    }
    return true;
  }
  if (proto === Object.prototype || proto === null) {
    for (const key in value as object) {
      const ok = walk(
        (value as Record<string, unknown>)[key],
        budget,
        depth + 1,
      );
      if (ok !== true) return ok;
    }
    return true;
  }
  if (value instanceof Date || value instanceof RegExp) return true;
  return undefined;
}
