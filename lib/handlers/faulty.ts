/**
 * The built-in handlers with fault injection around each: a handler module
 * for tests and benchmarks. Its policy comes from its own URL's `faults`
 * query parameter (JSON), as {@linkcode faultyHandlers} builds it, so every
 * worker that imports the URL wraps the same way; without one, no faults.
 *
 * @module
 */
import type { Handler } from "../handler.ts";
import * as builtin from "./builtin.ts";
import { type FaultPolicy, withFaults } from "./faults.ts";

const text = new URL(import.meta.url).searchParams.get("faults");
const policy: FaultPolicy = text === null ? {} : JSON.parse(text);

function wrap(type: keyof typeof builtin): Handler {
  return withFaults(builtin[type] as Handler, policy, type);
}

/** `image.variant` with the URL's faults. */
const imageVariant: Handler = wrap("image.variant");
/** `http.simulated` with the URL's faults. */
const httpSimulated: Handler = wrap("http.simulated");

export { httpSimulated as "http.simulated", imageVariant as "image.variant" };
/** `compute` with the URL's faults. */
export const compute: Handler = wrap("compute");
/** `sleep` with the URL's faults. */
export const sleep: Handler = wrap("sleep");
/** `fail` with the URL's faults. */
export const fail: Handler = wrap("fail");
/** `noop` with the URL's faults. */
export const noop: Handler = wrap("noop");
