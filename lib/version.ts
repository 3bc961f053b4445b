/**
 * The package version, in a module of its own: `cli.ts` prints it without
 * loading the library.
 *
 * @module
 */

/**
 * The version of this package.
 *
 * @example Reading the version
 * ```ts
 * import { VERSION } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * assert.equal(typeof VERSION, "string");
 * ```
 */
export const VERSION: string = "0.1.0";
