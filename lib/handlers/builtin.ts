/**
 * The built-in handler module: the worker pool loads this module by URL and
 * looks handlers up by task type, so the export names are the task types.
 *
 * | task type        | handler                                   |
 * | ---------------- | ----------------------------------------- |
 * | `image.variant`  | {@linkcode imageVariant}                  |
 * | `compute`        | {@linkcode compute}                       |
 * | `sleep`          | {@linkcode sleep}                         |
 * | `http.simulated` | {@linkcode httpSimulated}                 |
 * | `fail`           | {@linkcode fail}                          |
 * | `noop`           | {@linkcode noop}                          |
 *
 * @example Looking up a handler by task type
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const handlers = await import(new URL("./builtin.ts", import.meta.url).href);
 * assert.equal(typeof handlers["image.variant"], "function");
 * ```
 *
 * @module
 */
export { imageVariant as "image.variant" } from "./image/image_variant.ts";
export { compute } from "./compute.ts";
export { sleep } from "./sleep.ts";
export { httpSimulated as "http.simulated" } from "./http_simulated.ts";
export { fail } from "./fail.ts";
export { noop } from "./noop.ts";
