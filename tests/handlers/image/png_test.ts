import assert from "node:assert/strict";
import { PermanentError } from "../../../lib/errors.ts";
import {
  decodePng,
  encodePng,
  type PngColorType,
  type PngFilterType,
} from "../../../lib/handlers/image/png.ts";
import { resizeRows } from "../../../lib/handlers/image/resize.ts";

/** Deterministic RGBA rows; `kind` shapes them so each color type can hold them exactly. */
function image(
  width: number,
  height: number,
  kind: "rgba" | "rgb" | "gray" | "gray-alpha" | "palette",
): Uint8Array[] {
  const rows: Uint8Array[] = [];
  for (let y = 0; y < height; y++) {
    const row = new Uint8Array(width * 4);
    for (let x = 0; x < width; x++) {
      const r = (x * 37 + y * 11) & 0xff;
      const g = (x * 5 + y * 73) & 0xff;
      const b = (x * y + 17) & 0xff;
      const a = (x * 3 + y * 29) & 0xff;
      const o = x * 4;
      switch (kind) {
        case "rgba":
          row.set([r, g, b, a], o);
          break;
        case "rgb":
          row.set([r, g, b, 255], o);
          break;
        case "gray":
          row.set([r, r, r, 255], o);
          break;
        case "gray-alpha":
          row.set([g, g, g, a], o);
          break;
        case "palette":
          row.set(
            PALETTE.subarray(((x + y) % 5) * 4, ((x + y) % 5) * 4 + 4),
            o,
          );
          break;
      }
    }
    rows.push(row);
  }
  return rows;
}

const PALETTE = new Uint8Array([
  ...[255, 0, 0, 255],
  ...[0, 255, 0, 255],
  ...[0, 0, 255, 128],
  ...[10, 20, 30, 0],
  ...[200, 200, 200, 255],
]);

async function bytesOf(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Splits bytes into a stream of small chunks, to exercise incremental parsing. */
function trickle(data: Uint8Array, size = 7): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) {
    pieces.push(data.slice(i, i + size));
  }
  return ReadableStream.from(pieces);
}

const CASES: Array<
  [PngColorType, "rgba" | "rgb" | "gray" | "gray-alpha" | "palette"]
> = [[6, "rgba"], [2, "rgb"], [0, "gray"], [4, "gray-alpha"], [
  3,
  "palette",
]];

Deno.test("decodePng() returns the encoded rows when round-tripping each color type", async (t) => {
  for (const [colorType, kind] of CASES) {
    for (const filter of [0, 1, 2, 3, 4] as PngFilterType[]) {
      await t.step(`color type ${colorType}, filter ${filter}`, async () => {
        const rows = image(13, 9, kind);
        const png = await bytesOf(
          encodePng({ width: 13, height: 9 }, ReadableStream.from(rows), {
            colorType,
            filter,
            idatSize: 50,
            ...(colorType === 3 ? { palette: PALETTE } : {}),
          }),
        );
        assert.equal(png[25], colorType);
        const decoded = await decodePng(trickle(png));
        assert.deepEqual(
          [decoded.width, decoded.height, decoded.colorType],
          [13, 9, colorType],
        );
        assert.deepEqual(await Array.fromAsync(decoded.rows), rows);
      });
    }
  }
});

Deno.test("encodePng() writes identical bytes when given the same rows twice", async () => {
  const encode = (): Promise<Uint8Array> =>
    bytesOf(
      encodePng(
        { width: 40, height: 30 },
        ReadableStream.from(image(40, 30, "rgba")),
      ),
    );
  const [a, b] = await Promise.all([encode(), encode()]);
  assert.deepEqual(a, b);
});

Deno.test("encodePng() splits image data into IDAT chunks of idatSize", async () => {
  const png = await bytesOf(
    encodePng(
      { width: 64, height: 64 },
      ReadableStream.from(image(64, 64, "rgba")),
      {
        idatSize: 1000,
        filter: 0,
      },
    ),
  );
  const lengths: number[] = [];
  const view = new DataView(png.buffer);
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    if (type === "IDAT") lengths.push(length);
    at += 12 + length;
  }
  assert.ok(lengths.length > 2, `IDAT chunks: ${lengths}`);
  assert.ok(lengths.slice(0, -1).every((n) => n === 1000));
  assert.ok(lengths.at(-1)! <= 1000);
});

Deno.test("encodePng() errors the stream when a row has the wrong length", async () => {
  await assert.rejects(
    bytesOf(
      encodePng(
        { width: 2, height: 1 },
        ReadableStream.from([new Uint8Array(7)]),
      ),
    ),
    /row 0 must be 8 bytes, got 7/,
  );
  await assert.rejects(
    bytesOf(
      encodePng(
        { width: 1, height: 2 },
        ReadableStream.from([new Uint8Array(4)]),
      ),
    ),
    /expected 2 rows, got 1/,
  );
  assert.throws(
    () => encodePng({ width: 0, height: 1 }, ReadableStream.from([])),
    RangeError,
  );
  assert.throws(
    () =>
      encodePng({ width: 1, height: 1 }, ReadableStream.from([]), {
        colorType: 3,
      }),
    TypeError,
  );
});

Deno.test("decodePng() throws PermanentError when a CRC does not match", async () => {
  const png = await bytesOf(
    encodePng(
      { width: 8, height: 8 },
      ReadableStream.from(image(8, 8, "rgba")),
    ),
  );
  const headerCorrupt = png.slice();
  headerCorrupt[20] = headerCorrupt[20]! ^ 1; // inside IHDR data
  await assert.rejects(
    decodePng(ReadableStream.from([headerCorrupt])),
    (e) =>
      e instanceof PermanentError && /CRC mismatch in IHDR/.test(e.message),
  );
  const dataCorrupt = png.slice();
  const crcAt = png.length - 12 - 4; // the last IDAT's CRC
  dataCorrupt[crcAt] = dataCorrupt[crcAt]! ^ 0xff;
  const decoded = await decodePng(ReadableStream.from([dataCorrupt]));
  await assert.rejects(
    Array.fromAsync(decoded.rows),
    (e) =>
      e instanceof PermanentError && /CRC mismatch in IDAT/.test(e.message),
  );
  // Corrupt compressed data is caught by the CRC or by the inflater,
  // whichever sees it first; either way it is permanent.
  const deflateCorrupt = png.slice();
  const dataAt = png.length - 12 - 5;
  deflateCorrupt[dataAt] = deflateCorrupt[dataAt]! ^ 0xff;
  const decoded2 = await decodePng(ReadableStream.from([deflateCorrupt]));
  await assert.rejects(
    Array.fromAsync(decoded2.rows),
    (e) =>
      e instanceof PermanentError &&
      /CRC mismatch in IDAT|corrupt image data/.test(e.message),
  );
});

Deno.test("decodePng() throws PermanentError when the format is unsupported", async (t) => {
  const png = await bytesOf(
    encodePng(
      { width: 2, height: 2 },
      ReadableStream.from(image(2, 2, "rgba")),
    ),
  );
  const withIhdr = async (
    patch: (ihdr: Uint8Array) => void,
  ): Promise<Uint8Array> => {
    const copy = png.slice();
    patch(copy.subarray(16, 29));
    // Recompute the IHDR CRC so only the patched field is wrong.
    const crcBytes = await bytesOf(encodePngCrc(copy.subarray(12, 29)));
    copy.set(crcBytes, 29);
    return copy;
  };
  await t.step("interlaced", async () => {
    const bad = await withIhdr((h) => (h[12] = 1));
    await assert.rejects(
      decodePng(ReadableStream.from([bad])),
      /interlaced \(Adam7\)/,
    );
  });
  await t.step("16-bit", async () => {
    const bad = await withIhdr((h) => (h[8] = 16));
    await assert.rejects(
      decodePng(ReadableStream.from([bad])),
      /bit depth 16 is not supported/,
    );
  });
  await t.step("color type 5", async () => {
    const bad = await withIhdr((h) => (h[9] = 5));
    await assert.rejects(
      decodePng(ReadableStream.from([bad])),
      /color type 5 is not supported/,
    );
  });
  await t.step("not a PNG", async () => {
    await assert.rejects(
      decodePng(
        ReadableStream.from([new TextEncoder().encode("GIF89a, not a png")]),
      ),
      (e) =>
        e instanceof PermanentError && /not a PNG signature/.test(e.message),
    );
  });
  await t.step("truncated", async () => {
    const decoded = await decodePng(
      ReadableStream.from([png.slice(0, png.length - 20)]),
    );
    await assert.rejects(Array.fromAsync(decoded.rows), PermanentError);
  });
});

/** The 4-byte CRC of `typeAndData`, computed independently of lib/handlers/image/png.ts. */
function encodePngCrc(typeAndData: Uint8Array): ReadableStream<Uint8Array> {
  let c = 0xffffffff;
  for (const byte of typeAndData) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, (c ^ 0xffffffff) >>> 0);
  return ReadableStream.from([out]);
}

Deno.test("decodePng() cancels the source when the rows stream is cancelled", async () => {
  const png = await bytesOf(
    encodePng(
      { width: 50, height: 50 },
      ReadableStream.from(image(50, 50, "rgba")),
      {
        idatSize: 100,
      },
    ),
  );
  let cancelled = false;
  let at = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c): void {
      if (at >= png.length) return c.close();
      c.enqueue(png.slice(at, at + 64));
      at += 64;
    },
    cancel(): void {
      cancelled = true;
    },
  });
  const decoded = await decodePng(source);
  const reader = decoded.rows.getReader();
  assert.equal((await reader.read()).value?.length, 200);
  await reader.cancel();
  assert.equal(cancelled, true);
  assert.ok(at < png.length, "the source was not read to the end");
});

Deno.test("resizeRows() produces the target size when downscaling and upscaling", async (t) => {
  for (const filter of ["box", "bilinear"] as const) {
    for (
      const [sw, sh, dw, dh] of [[40, 30, 7, 5], [5, 3, 17, 11], [9, 9, 9, 9]]
    ) {
      await t.step(`${filter} ${sw}x${sh} -> ${dw}x${dh}`, async () => {
        const rows = await Array.fromAsync(
          resizeRows(
            ReadableStream.from(image(sw!, sh!, "rgba")),
            { width: sw!, height: sh! },
            { width: dw!, height: dh! },
            { filter },
          ),
        );
        assert.equal(rows.length, dh);
        assert.ok(rows.every((r) => r.length === dw! * 4));
      });
    }
  }
});

Deno.test("resizeRows() keeps a uniform image uniform and averages blocks exactly with box", async () => {
  const uniform = Array.from(
    { length: 6 },
    () => new Uint8Array(8 * 4).fill(77),
  );
  for (const filter of ["box", "bilinear"] as const) {
    const out = await Array.fromAsync(
      resizeRows(ReadableStream.from(uniform), { width: 8, height: 6 }, {
        width: 3,
        height: 5,
      }, { filter }),
    );
    assert.ok(out.every((row) => row.every((v) => v === 77)), filter);
  }
  // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
  const rows = [
    new Uint8Array([
      0,
      0,
      0,
      0,
      10,
      10,
      10,
      10,
      100,
      100,
      100,
      100,
      200,
      200,
      200,
      200,
    ]),
    new Uint8Array([
      20,
      20,
      20,
      20,
      30,
      30,
      30,
      30,
      50,
      50,
      50,
      50,
      50,
      50,
      50,
      50,
    ]),
  ];
  const [out] = await Array.fromAsync(
    resizeRows(ReadableStream.from(rows), { width: 4, height: 2 }, {
      width: 2,
      height: 1,
    }),
  );
  assert.deepEqual([...out!], [15, 15, 15, 15, 100, 100, 100, 100]);
});

Deno.test("resizeRows() is deterministic and errors when the row count is wrong", async () => {
  const run = (): Promise<Uint8Array[]> =>
    Array.fromAsync(
      resizeRows(ReadableStream.from(image(31, 17, "rgba")), {
        width: 31,
        height: 17,
      }, {
        width: 10,
        height: 40,
      }, { filter: "bilinear" }),
    );
  assert.deepEqual(await run(), await run());
  await assert.rejects(
    Array.fromAsync(
      resizeRows(ReadableStream.from(image(4, 3, "rgba")), {
        width: 4,
        height: 4,
      }, {
        width: 2,
        height: 2,
      }),
    ),
    /expected 4 source rows, got 3/,
  );
  assert.throws(
    () =>
      resizeRows(ReadableStream.from([]), { width: 1, height: 1 }, {
        width: 0,
        height: 1,
      }),
    /target width must be a positive integer, got 0/,
  );
});
