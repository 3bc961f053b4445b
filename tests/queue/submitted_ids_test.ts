import assert from "node:assert/strict";
import { uuidv7 } from "../../lib/_id.ts";
import { SubmittedIds } from "../../lib/queue/submitted_ids.ts";

Deno.test("SubmittedIds gives back every id and flag across growth of the first block and later blocks", () => {
  const ids = new SubmittedIds();
  const model: [string, boolean][] = [];
  // Past the first block's doublings (256 … 4,096 ids) and two more blocks.
  for (let i = 0; i < 10_000; i++) {
    const id = i % 997 === 5 ? `hand-made-${i}` : uuidv7();
    const deduplicated = i % 7 === 3;
    ids.push(id, deduplicated);
    model.push([id, deduplicated]);
    if (i === 255 || i === 256 || i === 4095 || i === 4096) {
      assert.equal(ids.id(i), id);
      assert.equal(ids.id(0), model[0]![0]);
    }
  }
  assert.equal(ids.length, model.length);
  const deduplicated = model.filter(([, d]) => d).length;
  assert.deepEqual([ids.submitted, ids.deduplicated], [
    model.length - deduplicated,
    deduplicated,
  ]);
  for (let i = 0; i < model.length; i++) {
    assert.equal(ids.id(i), model[i]![0]);
    assert.equal(ids.isDeduplicated(i), model[i]![1]);
  }
  assert.deepEqual([...ids], model.map(([id]) => id));
  assert.throws(() => ids.id(model.length), RangeError);
});
