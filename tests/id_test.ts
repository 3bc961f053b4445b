import assert from "node:assert/strict";
import { uuidv7 } from "../lib/_id.ts";

const UUIDV7 =
  /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("uuidv7() returns distinct version-7 UUIDs in creation order", () => {
  const ids = Array.from({ length: 10_000 }, () => uuidv7());
  for (const id of ids) assert.match(id, UUIDV7);
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} sorts before ${ids[i]}`);
  }
  assert.equal(new Set(ids).size, ids.length);
});

Deno.test("uuidv7() starts with the epoch-ms time it was made at", () => {
  const before = Date.now();
  const id = uuidv7();
  const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  // Never earlier; later only by the milliseconds borrowed when more than
  // 4,096 ids were made in one.
  assert.ok(ms >= before && ms < before + 60_000, `${ms} from ${id}`);
});
