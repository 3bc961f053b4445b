/**
 * The streaming image tools behind the built-in `image.variant` handler: a
 * PNG decoder and encoder that work in rows, never holding a whole image,
 * and a row-band resizer.
 *
 * @example Encoding rows and decoding them back
 * ```ts
 * import { decodePng, encodePng } from "@sluice/sluice/image";
 * import assert from "node:assert/strict";
 *
 * const rows = [new Uint8Array([255, 0, 0, 255, 0, 255, 0, 128])];
 * const png = encodePng({ width: 2, height: 1 }, ReadableStream.from(rows));
 * const decoded = await decodePng(png);
 * assert.equal(decoded.width, 2);
 * assert.deepEqual(await Array.fromAsync(decoded.rows), rows);
 * ```
 *
 * @module
 */
export {
  type DecodedPng,
  decodePng,
  type DecodePngOptions,
  encodePng,
  type EncodePngOptions,
  type PngColorType,
  type PngFilterType,
  type PngHeader,
} from "./lib/handlers/image/png.ts";
export {
  type ResizeFilter,
  type ResizeOptions,
  resizeRows,
  type Size,
} from "./lib/handlers/image/resize.ts";
export {
  IMAGE_VARIANT_MAX_SOURCE_BYTES,
  imageVariant,
  type ImageVariantPayload,
  type ImageVariantResult,
} from "./lib/handlers/image/image_variant.ts";
