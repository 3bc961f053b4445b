/**
 * The `image.variant` handler: a resized copy of a PNG, streamed from the
 * object store back into it.
 *
 * @module
 */
import { PermanentError } from "../../errors.ts";
import type { TaskContext } from "../../handler.ts";
import { ObjectNotFoundError } from "../../objects.ts";
import { decodePng, encodePng } from "./png.ts";
import { resizeRows } from "./resize.ts";

/**
 * Largest encoded source accepted by `image.variant`: 64 MiB. Bigger
 * sources fail permanently before any byte is decoded.
 */
export const IMAGE_VARIANT_MAX_SOURCE_BYTES: number = 64 * 1024 * 1024;

/** Largest target width or height. */
const MAX_SIDE = 8192;

/**
 * Payload of the `image.variant` task type.
 *
 * ```json
 * { "image_key": "photos/cat.png", "size": "200x200" }
 * ```
 *
 * `size` is an exact `WxH` (each 1..8192): the image is stretched to it.
 */
export interface ImageVariantPayload {
  /** Key of the source PNG in the object store. */
  image_key: string;
  /** Target size, `"<width>x<height>"`. */
  size: string;
}

/** What `image.variant` returns. */
export interface ImageVariantResult {
  /** Where the variant was written: `variants/<image_key>@<size>.png`. */
  output_key: string;
  /** Width of the variant. */
  width: number;
  /** Height of the variant. */
  height: number;
  /** Size of the encoded variant in bytes. */
  bytes: number;
}

/**
 * Handler for `image.variant`: streams `image_key` out of `ctx.objects`,
 * decodes it, resizes it in bands (box filter), encodes it (RGBA, Paeth) and
 * streams it into `variants/<image_key>@<size>.png`. Nothing holds the whole
 * image; the output appears atomically, only when complete. The output is a
 * pure function of the source bytes and the size, so a retry rewrites the
 * same bytes. An abort through `ctx.signal` stops the work and leaves no
 * output.
 *
 * @param payload `{ image_key: string, size: "WxH" }`.
 * @param ctx The task context; `objects` and `signal` are used.
 * @returns `{ output_key, width, height, bytes }`.
 * @throws {PermanentError} When a payload field is invalid, the source is
 * missing, larger than {@linkcode IMAGE_VARIANT_MAX_SOURCE_BYTES}, or not a
 * supported PNG.
 * @throws {unknown} The signal's reason when the task is aborted.
 *
 * @example Making a thumbnail
 * ```ts
 * import { encodePng, imageVariant } from "@sluice/sluice/image";
 * import { ObjectStore, type TaskContext } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const objects = new ObjectStore(await Deno.makeTempDir());
 * const row = new Uint8Array(4 * 4).fill(200);
 * await objects.put(
 *   "a.png",
 *   encodePng({ width: 4, height: 4 }, ReadableStream.from([row, row, row, row])),
 * );
 * const ctx = { objects, signal: new AbortController().signal } as TaskContext;
 * const result = await imageVariant({ image_key: "a.png", size: "2x1" }, ctx);
 * assert.equal(result.output_key, "variants/a.png@2x1.png");
 * assert.deepEqual([result.width, result.height], [2, 1]);
 * await Deno.remove(objects.root, { recursive: true });
 * ```
 */
export async function imageVariant(
  payload: ImageVariantPayload,
  ctx: TaskContext,
): Promise<ImageVariantResult> {
  const { imageKey, width, height, size } = checkPayload(payload);
  const { objects, signal } = ctx;
  signal.throwIfAborted();
  const info = await objects.stat(imageKey).catch((error) => {
    throw new PermanentError(
      `Cannot run image.variant: payload.image_key is not a valid key (${
        (error as Error).message
      })`,
      { cause: error },
    );
  });
  if (info === null) {
    throw new PermanentError(
      `Cannot run image.variant: source object ${
        JSON.stringify(imageKey)
      } does not exist`,
    );
  }
  if (info.size > IMAGE_VARIANT_MAX_SOURCE_BYTES) {
    throw new PermanentError(
      `Cannot run image.variant: source object ${
        JSON.stringify(imageKey)
      } is ${info.size} bytes, over the limit of ${IMAGE_VARIANT_MAX_SOURCE_BYTES}`,
    );
  }
  let source: ReadableStream<Uint8Array>;
  try {
    source = await objects.get(imageKey, { signal });
  } catch (error) {
    if (error instanceof ObjectNotFoundError) {
      throw new PermanentError(
        `Cannot run image.variant: source object ${
          JSON.stringify(imageKey)
        } does not exist`,
        { cause: error },
      );
    }
    throw error;
  }
  const image = await decodePng(source, { signal });
  const rows = resizeRows(image.rows, image, { width, height }, { signal });
  const png = encodePng({ width, height }, rows, { signal });
  const output_key = `variants/${imageKey}@${size}.png`;
  const written = await objects.put(output_key, png, { signal });
  return { output_key, width, height, bytes: written.size };
}

function checkPayload(
  payload: ImageVariantPayload,
): { imageKey: string; width: number; height: number; size: string } {
  const p = payload as unknown as Record<string, unknown> | null;
  if (typeof p !== "object" || p === null) {
    throw new PermanentError(
      `Cannot run image.variant: payload must be an object, got ${
        JSON.stringify(p)
      }`,
    );
  }
  if (typeof p.image_key !== "string" || p.image_key === "") {
    throw new PermanentError(
      `Cannot run image.variant: payload.image_key must be a non-empty string, got ${
        JSON.stringify(p.image_key)
      }`,
    );
  }
  const match = typeof p.size === "string"
    ? /^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$/.exec(p.size)
    : null;
  if (match === null) {
    throw new PermanentError(
      `Cannot run image.variant: payload.size must look like 200x200, got ${
        JSON.stringify(p.size)
      }`,
    );
  }
  const width = Number(match[1]);
  const height = Number(match[2]);
  if (width > MAX_SIDE || height > MAX_SIDE) {
    throw new PermanentError(
      `Cannot run image.variant: payload.size must be at most ${MAX_SIDE}x${MAX_SIDE}, got ${
        JSON.stringify(p.size)
      }`,
    );
  }
  return { imageKey: p.image_key, width, height, size: p.size as string };
}
