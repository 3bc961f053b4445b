/**
 * A streaming PNG codec in pure TypeScript, using the runtime's
 * `DecompressionStream("deflate")` and `CompressionStream("deflate")` for
 * the zlib data in IDAT chunks.
 *
 * Rows are RGBA, 8 bits per channel, one `Uint8Array` of `width * 4` bytes
 * per row, top to bottom. Neither direction holds more than a couple of rows
 * and one chunk of compressed data at a time.
 *
 * @module
 */
import { PermanentError } from "../../errors.ts";

const SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** PNG color types this codec reads and writes, all at bit depth 8. */
export type PngColorType = 0 | 2 | 3 | 4 | 6;

/** Row filter types, as numbered by the PNG specification. */
export type PngFilterType = 0 | 1 | 2 | 3 | 4;

/** The image header of a PNG. */
export interface PngHeader {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The stored color type (rows are RGBA whatever it is). */
  colorType: PngColorType;
}

/** A PNG being decoded: its header and its rows as they are decoded. */
export interface DecodedPng extends PngHeader {
  /**
   * RGBA rows, `width * 4` bytes each, `height` of them. Cancelling this
   * stream cancels the source.
   */
  rows: ReadableStream<Uint8Array>;
}

/** Options for {@linkcode decodePng}. */
export interface DecodePngOptions {
  /**
   * Aborts decoding: the rows stream errors with the signal's reason and the
   * source is cancelled.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Largest accepted `width * height`, checked against the header before any
   * row is decoded.
   *
   * @default {268435456}
   */
  maxPixels?: number;
}

/** Options for {@linkcode encodePng}. */
export interface EncodePngOptions {
  /**
   * The color type written. Input rows are always RGBA: type 0 keeps the
   * red channel, 2 drops alpha, 4 keeps red and alpha, 3 maps every pixel to
   * an entry of `palette`.
   *
   * @default {6}
   */
  colorType?: PngColorType;
  /**
   * Palette for color type 3: RGBA entries, 4 bytes each, at most 256. Every
   * input pixel must match an entry exactly.
   *
   * @default {undefined}
   */
  palette?: Uint8Array;
  /**
   * The filter applied to every row. A fixed filter keeps the output a pure
   * function of the input.
   *
   * @default {4}
   */
  filter?: PngFilterType;
  /**
   * Target size of each IDAT chunk's data, in bytes.
   *
   * @default {65536}
   */
  idatSize?: number;
  /**
   * Aborts encoding: the output stream errors with the signal's reason and
   * the input rows are cancelled.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------
// CRC-32 (ISO 3309), as PNG uses it over chunk type and data.

const CRC_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crcUpdate(crc: number, bytes: Uint8Array): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) {
    c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  }
  return c;
}

// ---------------------------------------------------------------------------
// Decoding

function invalid(reason: string): PermanentError {
  return new PermanentError(`Cannot decode PNG: ${reason}`);
}

/** Reads exact byte counts from a stream, keeping at most one source chunk. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #offset = 0;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /** Returns up to `max` bytes (at least 1), or null at the end. */
  async readUpTo(max: number): Promise<Uint8Array | null> {
    while (this.#offset >= this.#chunk.length) {
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#chunk = value;
      this.#offset = 0;
    }
    const end = Math.min(this.#chunk.length, this.#offset + max);
    const out = this.#chunk.subarray(this.#offset, end);
    this.#offset = end;
    return out;
  }

  /** Returns exactly `n` bytes in a fresh buffer, or throws at a premature end. */
  async readExact(n: number, what: string): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    await this.readInto(out, what);
    return out;
  }

  /** Fills `out` completely, or throws at a premature end. */
  async readInto(out: Uint8Array, what: string): Promise<void> {
    let filled = 0;
    while (filled < out.length) {
      const piece = await this.readUpTo(out.length - filled);
      if (piece === null) throw invalid(`stream ended inside ${what}`);
      out.set(piece, filled);
      filled += piece.length;
    }
  }

  cancel(reason: unknown): Promise<void> {
    return this.#reader.cancel(reason).catch(() => {});
  }
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
}

function typeName(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/** Walks the chunk structure, verifying CRCs; IDAT data is read in pieces. */
class ChunkReader {
  readonly bytes: ByteReader;
  #crc = 0;
  #remaining = 0;
  type = "";

  constructor(bytes: ByteReader) {
    this.bytes = bytes;
  }

  async next(): Promise<{ type: string; length: number }> {
    const head = await this.bytes.readExact(8, "a chunk header");
    const length = u32(head, 0);
    if (length > 0x7fffffff) throw invalid(`chunk length ${length} too large`);
    const type = head.subarray(4, 8);
    this.type = typeName(type);
    this.#crc = crcUpdate(0xffffffff, type);
    this.#remaining = length;
    return { type: this.type, length };
  }

  /** The next piece of the current chunk's data, or null when it is consumed. */
  async piece(max = 65536): Promise<Uint8Array | null> {
    if (this.#remaining === 0) return null;
    const piece = await this.bytes.readUpTo(Math.min(max, this.#remaining));
    if (piece === null) throw invalid(`stream ended inside ${this.type}`);
    this.#remaining -= piece.length;
    this.#crc = crcUpdate(this.#crc, piece);
    return piece;
  }

  async all(): Promise<Uint8Array> {
    const out = new Uint8Array(this.#remaining);
    let at = 0;
    for (let p = await this.piece(); p !== null; p = await this.piece()) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async skip(): Promise<void> {
    while ((await this.piece()) !== null) {
      /* CRC still covers skipped data */
    }
  }

  async end(): Promise<void> {
    const stored = u32(await this.bytes.readExact(4, `${this.type} CRC`), 0);
    const computed = (this.#crc ^ 0xffffffff) >>> 0;
    if (stored !== computed) {
      throw invalid(`CRC mismatch in ${this.type} chunk`);
    }
  }
}

const CHANNELS: Record<PngColorType, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Starts decoding a PNG from a stream of bytes. Resolves once the header
 * (and palette) have been read; rows are then decoded as the returned
 * `rows` stream is read, holding only the previous and the current row.
 * Supported: color types 0, 2, 3, 4 and 6 at bit depth 8, non-interlaced,
 * with `tRNS` transparency. Every chunk's CRC is verified.
 *
 * @param source The PNG's bytes. It is read by the decoder and cancelled when
 * decoding fails or the rows stream is cancelled.
 * @param options An abort signal and a size limit.
 * @returns The header and the rows stream.
 * @throws {PermanentError} When the data is not a PNG, is corrupt (bad CRC,
 * truncated) or uses an unsupported bit depth, color type or interlacing;
 * the rows stream errors with the same kind of error for problems found later.
 * @throws {RangeError} When `maxPixels` is not a positive integer.
 *
 * @example Decoding what the encoder wrote
 * ```ts
 * import { decodePng, encodePng } from "@sluice/sluice/image";
 * import assert from "node:assert/strict";
 *
 * const rows = [new Uint8Array([255, 0, 0, 255, 0, 255, 0, 128])];
 * const png = encodePng({ width: 2, height: 1 }, ReadableStream.from(rows));
 * const image = await decodePng(png);
 * assert.deepEqual([image.width, image.height, image.colorType], [2, 1, 6]);
 * const decoded = await Array.fromAsync(image.rows);
 * assert.deepEqual(decoded, rows);
 * ```
 */
export async function decodePng(
  source: ReadableStream<Uint8Array>,
  options: DecodePngOptions = {},
): Promise<DecodedPng> {
  const { signal } = options;
  const maxPixels = options.maxPixels ?? 268435456;
  if (!Number.isInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError(
      `Cannot decode PNG: maxPixels must be a positive integer, got ${maxPixels}`,
    );
  }
  const bytes = new ByteReader(source.getReader());
  const chunks = new ChunkReader(bytes);
  let header: PngHeader;
  let palette: Uint8Array | null = null;
  let transparency: Uint8Array | null = null;
  let firstIdatLength: number;
  try {
    signal?.throwIfAborted();
    const signature = await bytes.readExact(8, "the signature");
    if (!signature.every((b, i) => b === SIGNATURE[i])) {
      throw invalid("not a PNG signature");
    }
    const first = await chunks.next();
    if (first.type !== "IHDR" || first.length !== 13) {
      throw invalid(`expected IHDR first, got ${first.type}`);
    }
    const ihdr = await chunks.all();
    await chunks.end();
    const width = u32(ihdr, 0);
    const height = u32(ihdr, 4);
    const [bitDepth, colorType, compression, filterMethod, interlace] = ihdr
      .subarray(8);
    if (width === 0 || height === 0) {
      throw invalid(`image size ${width}x${height} is empty`);
    }
    if (width * height > maxPixels) {
      throw invalid(
        `image size ${width}x${height} exceeds the limit of ${maxPixels} pixels`,
      );
    }
    if (!(colorType! in CHANNELS)) {
      throw invalid(`color type ${colorType} is not supported`);
    }
    if (bitDepth !== 8) {
      throw invalid(
        `bit depth ${bitDepth} is not supported (only 8 bits per channel)`,
      );
    }
    if (compression !== 0 || filterMethod !== 0) {
      throw invalid("unknown compression or filter method");
    }
    if (interlace !== 0) {
      throw invalid("interlaced (Adam7) images are not supported");
    }
    header = { width, height, colorType: colorType as PngColorType };
    while (true) {
      const chunk = await chunks.next();
      if (chunk.type === "IDAT") {
        firstIdatLength = chunk.length;
        break;
      }
      if (chunk.type === "IEND") throw invalid("no IDAT chunk");
      if (chunk.type === "PLTE") palette = await chunks.all();
      else if (chunk.type === "tRNS") transparency = await chunks.all();
      else if ((chunk.type.charCodeAt(0) & 0x20) === 0) {
        throw invalid(`unknown critical chunk ${chunk.type}`);
      } else await chunks.skip();
      await chunks.end();
    }
    if (header.colorType === 3 && palette === null) {
      throw invalid("color type 3 without PLTE");
    }
  } catch (error) {
    await bytes.cancel(error);
    throw error;
  }
  const rows = ReadableStream.from(
    decodeRows(header, chunks, firstIdatLength, palette, transparency, signal),
  );
  return { ...header, rows };
}

/** The zlib stream's bytes, pumped from IDAT chunks into a DecompressionStream. */
async function* decodeRows(
  header: PngHeader,
  chunks: ChunkReader,
  firstIdatLength: number,
  palette: Uint8Array | null,
  transparency: Uint8Array | null,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  const { width, height, colorType } = header;
  const channels = CHANNELS[colorType];
  const stride = width * channels;
  const inflate = new DecompressionStream("deflate");
  const writer = inflate.writable.getWriter();
  const inflated = new ByteReader(inflate.readable.getReader());
  // The feeder owns the source and the writer; the generator owns the
  // inflated reader. A failure on either side stops the other.
  let feedError: unknown = undefined;
  let stopped = false;
  const feeder = (async (): Promise<void> => {
    let inIdat = firstIdatLength >= 0;
    while (true) {
      if (inIdat) {
        for (
          let p = await chunks.piece();
          p !== null;
          p = await chunks.piece()
        ) {
          if (stopped) return;
          await writer.write(p as Uint8Array<ArrayBuffer>);
        }
      } else await chunks.skip();
      await chunks.end();
      const next = await chunks.next();
      if (next.type === "IEND") break;
      if (next.type === "IDAT") {
        if (!inIdat) throw invalid("IDAT chunks are not consecutive");
        continue;
      }
      inIdat = false;
      if ((next.type.charCodeAt(0) & 0x20) === 0) {
        throw invalid(`unknown critical chunk ${next.type}`);
      }
    }
    await chunks.end();
    await writer.close();
  })().catch(async (error) => {
    feedError ??= error;
    await writer.abort(error).catch(() => {});
    await chunks.bytes.cancel(error);
  });
  const onAbort = (): void => {
    feedError ??= signal?.reason;
    stopped = true;
    writer.abort(signal?.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let previous = new Uint8Array(stride);
  let current = new Uint8Array(stride);
  const filter = new Uint8Array(1);
  try {
    signal?.throwIfAborted();
    for (let y = 0; y < height; y++) {
      try {
        await inflated.readInto(filter, "image data");
        await inflated.readInto(current, "image data");
      } catch (error) {
        if (feedError !== undefined) throw feedError;
        if (error instanceof PermanentError) throw error;
        throw invalid(`corrupt image data (${(error as Error).message})`);
      }
      unfilter(filter[0]!, current, previous, channels);
      yield toRgba(current, width, colorType, palette, transparency);
      [previous, current] = [current, previous];
    }
    const trailing = await inflated.readUpTo(1).catch((error) => {
      throw feedError ?? error;
    });
    if (trailing !== null) throw invalid("extra image data after the last row");
    await feeder;
    if (feedError !== undefined) throw feedError;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stopped = true;
    await inflated.cancel(undefined);
    await writer.abort(undefined).catch(() => {});
    await chunks.bytes.cancel(undefined);
    await feeder;
  }
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  if (pb <= pc) return b;
  return c;
}

function unfilter(
  type: number,
  row: Uint8Array,
  prev: Uint8Array,
  bpp: number,
): void {
  const n = row.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) row[i] = row[i]! + row[i - bpp]!;
      return;
    case 2:
      for (let i = 0; i < n; i++) row[i] = row[i]! + prev[i]!;
      return;
    case 3:
      for (let i = 0; i < bpp; i++) row[i] = row[i]! + (prev[i]! >> 1);
      for (let i = bpp; i < n; i++) {
        row[i] = row[i]! + ((row[i - bpp]! + prev[i]!) >> 1);
      }
      return;
    case 4:
      for (let i = 0; i < bpp; i++) row[i] = row[i]! + prev[i]!;
      for (let i = bpp; i < n; i++) {
        row[i] = row[i]! + paeth(row[i - bpp]!, prev[i]!, prev[i - bpp]!);
      }
      return;
    default:
      throw invalid(`unknown filter type ${type}`);
  }
}

function toRgba(
  row: Uint8Array,
  width: number,
  colorType: PngColorType,
  palette: Uint8Array | null,
  trns: Uint8Array | null,
): Uint8Array {
  const out = new Uint8Array(width * 4);
  switch (colorType) {
    case 6:
      out.set(row);
      break;
    case 2: {
      const key = trns !== null && trns.length >= 6
        ? [trns[1]!, trns[3]!, trns[5]!]
        : null;
      for (let x = 0, i = 0, o = 0; x < width; x++, i += 3, o += 4) {
        const r = row[i]!, g = row[i + 1]!, b = row[i + 2]!;
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = b;
        out[o + 3] = key !== null && r === key[0] && g === key[1] &&
            b === key[2]
          ? 0
          : 255;
      }
      break;
    }
    case 0: {
      const key = trns !== null && trns.length >= 2 ? trns[1]! : -1;
      for (let x = 0, o = 0; x < width; x++, o += 4) {
        const v = row[x]!;
        out[o] = out[o + 1] = out[o + 2] = v;
        out[o + 3] = v === key ? 0 : 255;
      }
      break;
    }
    case 4:
      for (let x = 0, i = 0, o = 0; x < width; x++, i += 2, o += 4) {
        const v = row[i]!;
        out[o] = out[o + 1] = out[o + 2] = v;
        out[o + 3] = row[i + 1]!;
      }
      break;
    case 3: {
      const entries = palette!.length / 3;
      for (let x = 0, o = 0; x < width; x++, o += 4) {
        const index = row[x]!;
        if (index >= entries) {
          throw invalid(`palette index ${index} out of range`);
        }
        out[o] = palette![index * 3]!;
        out[o + 1] = palette![index * 3 + 1]!;
        out[o + 2] = palette![index * 3 + 2]!;
        out[o + 3] = trns !== null && index < trns.length ? trns[index]! : 255;
      }
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Encoding

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  const crc = crcUpdate(0xffffffff, out.subarray(4, 8 + data.length));
  view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
  return out;
}

/**
 * Encodes RGBA rows as a PNG, streaming: each row is filtered with a fixed
 * filter, compressed through `CompressionStream("deflate")`, and emitted in
 * IDAT chunks of about `idatSize` bytes as compressed data accumulates. The
 * same rows and options always give the same bytes.
 *
 * @param header The image size; exactly `height` rows of `width * 4` bytes
 * must follow.
 * @param rows RGBA rows, top to bottom.
 * @param options Color type, palette, filter, IDAT size and an abort signal.
 * @returns The PNG's bytes.
 * @throws {RangeError} When the size, filter, idatSize, color type or palette is invalid.
 * @throws {TypeError} When `palette` is missing for color type 3.
 * The output stream errors with a `RangeError` when a row has the wrong
 * length, there are too few or too many rows, or a pixel is not in the palette.
 *
 * @example Encoding a 1x1 image
 * ```ts
 * import { encodePng } from "@sluice/sluice/image";
 * import assert from "node:assert/strict";
 *
 * const png = encodePng(
 *   { width: 1, height: 1 },
 *   ReadableStream.from([new Uint8Array([10, 20, 30, 255])]),
 *   { colorType: 2 },
 * );
 * const bytes = new Uint8Array(await new Response(png).arrayBuffer());
 * assert.deepEqual([...bytes.subarray(1, 4)], [80, 78, 71]); // "PNG"
 * ```
 */
export function encodePng(
  header: { width: number; height: number },
  rows: ReadableStream<Uint8Array>,
  options: EncodePngOptions = {},
): ReadableStream<Uint8Array> {
  const { width, height } = header;
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) {
      throw new RangeError(
        `Cannot encode PNG: ${name} must be a positive integer, got ${value}`,
      );
    }
  }
  const colorType = options.colorType ?? 6;
  if (!(colorType in CHANNELS)) {
    throw new RangeError(
      `Cannot encode PNG: colorType must be 0, 2, 3, 4 or 6, got ${colorType}`,
    );
  }
  const filter = options.filter ?? 4;
  if (![0, 1, 2, 3, 4].includes(filter)) {
    throw new RangeError(
      `Cannot encode PNG: filter must be 0 to 4, got ${filter}`,
    );
  }
  const idatSize = options.idatSize ?? 65536;
  if (!Number.isInteger(idatSize) || idatSize < 1) {
    throw new RangeError(
      `Cannot encode PNG: idatSize must be a positive integer, got ${idatSize}`,
    );
  }
  let paletteIndex: Map<number, number> | null = null;
  const prelude: Uint8Array[] = [];
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, colorType, 0, 0, 0], 8);
  prelude.push(SIGNATURE.slice(), chunk("IHDR", ihdr));
  if (colorType === 3) {
    const palette = options.palette;
    if (!(palette instanceof Uint8Array)) {
      throw new TypeError(
        "Cannot encode PNG: palette must be a Uint8Array for colorType 3, got undefined",
      );
    }
    if (
      palette.length === 0 || palette.length % 4 !== 0 || palette.length > 1024
    ) {
      throw new RangeError(
        `Cannot encode PNG: palette must hold 1 to 256 RGBA entries, got ${palette.length} bytes`,
      );
    }
    const entries = palette.length / 4;
    const plte = new Uint8Array(entries * 3);
    const trns = new Uint8Array(entries);
    paletteIndex = new Map();
    for (let i = 0; i < entries; i++) {
      plte.set(palette.subarray(i * 4, i * 4 + 3), i * 3);
      trns[i] = palette[i * 4 + 3]!;
      const packed = new DataView(palette.buffer, palette.byteOffset + i * 4, 4)
        .getUint32(0);
      if (!paletteIndex.has(packed)) paletteIndex.set(packed, i);
    }
    prelude.push(chunk("PLTE", plte));
    if (trns.some((a) => a !== 255)) prelude.push(chunk("tRNS", trns));
  }
  return ReadableStream.from(
    encodeChunks(
      width,
      height,
      colorType,
      paletteIndex,
      filter,
      idatSize,
      prelude,
      rows,
      options.signal,
    ),
  );
}

async function* encodeChunks(
  width: number,
  height: number,
  colorType: PngColorType,
  paletteIndex: Map<number, number> | null,
  filter: PngFilterType,
  idatSize: number,
  prelude: Uint8Array[],
  rows: ReadableStream<Uint8Array>,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  yield* prelude;
  const bpp = CHANNELS[colorType];
  const stride = width * bpp;
  const deflate = new CompressionStream("deflate");
  const writer = deflate.writable.getWriter();
  const compressed = deflate.readable.getReader();
  const rowReader = rows.getReader();
  // The feeder owns the input rows and the writer; the generator owns the
  // compressed reader. Raw rows are batched so each write is ~64 KiB.
  let feedError: unknown = undefined;
  let stopped = false;
  const feeder = (async (): Promise<void> => {
    let previous = new Uint8Array(stride);
    let current = new Uint8Array(stride);
    const batchRows = Math.max(1, Math.floor(65536 / (stride + 1)));
    let batch = new Uint8Array(batchRows * (stride + 1));
    let filled = 0;
    for (let y = 0; y < height; y++) {
      const { done, value } = await rowReader.read();
      if (stopped) return;
      if (done) {
        throw new RangeError(
          `Cannot encode PNG: expected ${height} rows, got ${y}`,
        );
      }
      if (value.length !== width * 4) {
        throw new RangeError(
          `Cannot encode PNG: row ${y} must be ${
            width * 4
          } bytes, got ${value.length}`,
        );
      }
      fromRgba(value, current, colorType, paletteIndex, y);
      const at = filled * (stride + 1);
      batch[at] = filter;
      applyFilter(filter, current, previous, bpp, batch, at + 1);
      [previous, current] = [current, previous];
      filled++;
      if (filled === batchRows || y === height - 1) {
        const data = batch.subarray(0, filled * (stride + 1));
        // Each batch is a fresh buffer: the stream may still hold the last.
        batch = new Uint8Array(batchRows * (stride + 1));
        filled = 0;
        await writer.write(data);
        if (stopped) return;
      }
    }
    const extra = await rowReader.read();
    if (!extra.done) {
      throw new RangeError(
        `Cannot encode PNG: expected ${height} rows, got more`,
      );
    }
    await writer.close();
  })().catch(async (error) => {
    feedError ??= error;
    await writer.abort(error).catch(() => {});
    await rowReader.cancel(error).catch(() => {});
  });
  const onAbort = (): void => {
    feedError ??= signal?.reason;
    stopped = true;
    writer.abort(signal?.reason).catch(() => {});
    rowReader.cancel(signal?.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    let pending: Uint8Array[] = [];
    let pendingSize = 0;
    const flush = (): Uint8Array => {
      const data = new Uint8Array(pendingSize);
      let at = 0;
      for (const piece of pending) {
        data.set(piece, at);
        at += piece.length;
      }
      pending = [];
      pendingSize = 0;
      return chunk("IDAT", data);
    };
    while (true) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await compressed.read();
      } catch (error) {
        throw feedError ?? error;
      }
      if (feedError !== undefined) throw feedError;
      if (result.done) break;
      let piece = result.value;
      while (pendingSize + piece.length >= idatSize) {
        const take = idatSize - pendingSize;
        pending.push(piece.subarray(0, take));
        pendingSize += take;
        piece = piece.subarray(take);
        yield flush();
      }
      if (piece.length > 0) {
        pending.push(piece);
        pendingSize += piece.length;
      }
    }
    await feeder;
    if (feedError !== undefined) throw feedError;
    if (pendingSize > 0) yield flush();
    yield chunk("IEND", new Uint8Array(0));
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stopped = true;
    await compressed.cancel().catch(() => {});
    await writer.abort().catch(() => {});
    await rowReader.cancel().catch(() => {});
    await feeder;
  }
}

function fromRgba(
  rgba: Uint8Array,
  out: Uint8Array,
  colorType: PngColorType,
  paletteIndex: Map<number, number> | null,
  y: number,
): void {
  const width = rgba.length / 4;
  switch (colorType) {
    case 6:
      out.set(rgba);
      return;
    case 2:
      for (let x = 0, i = 0, o = 0; x < width; x++, i += 4, o += 3) {
        out[o] = rgba[i]!;
        out[o + 1] = rgba[i + 1]!;
        out[o + 2] = rgba[i + 2]!;
      }
      return;
    case 0:
      for (let x = 0; x < width; x++) out[x] = rgba[x * 4]!;
      return;
    case 4:
      for (let x = 0; x < width; x++) {
        out[x * 2] = rgba[x * 4]!;
        out[x * 2 + 1] = rgba[x * 4 + 3]!;
      }
      return;
    case 3:
      for (let x = 0, i = 0; x < width; x++, i += 4) {
        const packed = ((rgba[i]! << 24) | (rgba[i + 1]! << 16) |
          (rgba[i + 2]! << 8) | rgba[i + 3]!) >>> 0;
        const index = paletteIndex!.get(packed);
        if (index === undefined) {
          throw new RangeError(
            `Cannot encode PNG: pixel (${x}, ${y}) is not in the palette`,
          );
        }
        out[x] = index;
      }
      return;
  }
}

function applyFilter(
  type: PngFilterType,
  row: Uint8Array,
  prev: Uint8Array,
  bpp: number,
  out: Uint8Array,
  at: number,
): void {
  const n = row.length;
  switch (type) {
    case 0:
      out.set(row, at);
      return;
    case 1:
      for (let i = 0; i < n; i++) {
        out[at + i] = row[i]! - (i >= bpp ? row[i - bpp]! : 0);
      }
      return;
    case 2:
      for (let i = 0; i < n; i++) out[at + i] = row[i]! - prev[i]!;
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? row[i - bpp]! : 0;
        out[at + i] = row[i]! - ((left + prev[i]!) >> 1);
      }
      return;
    case 4:
      for (let i = 0; i < bpp; i++) out[at + i] = row[i]! - prev[i]!;
      for (let i = bpp; i < n; i++) {
        out[at + i] = row[i]! - paeth(row[i - bpp]!, prev[i]!, prev[i - bpp]!);
      }
      return;
  }
}
