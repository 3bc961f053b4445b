import assert from "node:assert/strict";
import { RingBuffer } from "../lib/ring_buffer.ts";

Deno.test("RingBuffer.shift() returns values in push order across wrap-around and growth", () => {
  const ring = new RingBuffer<number>(8);
  const model: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the head wraps before the buffer grows.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3 + (round % 5); i++) {
      ring.push(next);
      model.push(next++);
    }
    for (let i = 0; i < 2 + (round % 3); i++) {
      assert.equal(ring.shift(), model.shift());
    }
    assert.equal(ring.length, model.length);
    assert.deepEqual([...ring], model);
  }
  assert.ok(ring.capacity > 8, "the buffer should have grown");
  assert.equal(ring.capacity & (ring.capacity - 1), 0);
  while (model.length > 0) assert.equal(ring.shift(), model.shift());
  assert.equal(ring.length, 0);
});

Deno.test("RingBuffer.shift() and peek() return undefined when empty", () => {
  const ring = new RingBuffer<string>();
  assert.equal(ring.shift(), undefined);
  assert.equal(ring.peek(), undefined);
  ring.push("a");
  assert.equal(ring.peek(), "a");
  assert.equal(ring.length, 1);
  assert.equal(ring.shift(), "a");
  assert.equal(ring.peek(), undefined);
  assert.equal(ring.length, 0);
});

Deno.test("RingBuffer.clear() empties the buffer and keeps it usable", () => {
  const ring = new RingBuffer<number>();
  for (let i = 0; i < 20; i++) ring.push(i);
  ring.shift();
  ring.clear();
  assert.equal(ring.length, 0);
  assert.deepEqual([...ring], []);
  ring.push(99);
  assert.equal(ring.shift(), 99);
});

Deno.test("RingBuffer.retain() keeps order when the contents wrap around", () => {
  const ring = new RingBuffer<number>(8);
  for (let i = 0; i < 6; i++) ring.push(i);
  for (let i = 0; i < 5; i++) ring.shift();
  for (let i = 6; i < 13; i++) ring.push(i); // wraps: head at 5, 8 items
  assert.equal(ring.capacity, 8);
  const removed = ring.retain((n) => n % 3 !== 0);
  assert.equal(removed, 3); // 6, 9 and 12
  assert.deepEqual([...ring], [5, 7, 8, 10, 11]);
  ring.push(100);
  assert.equal(ring.shift(), 5);
  assert.deepEqual([...ring], [7, 8, 10, 11, 100]);
});

Deno.test("RingBuffer constructor rounds up and rejects a bad initialCapacity", () => {
  assert.equal(new RingBuffer(0).capacity, 8);
  assert.equal(new RingBuffer(9).capacity, 16);
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(() => new RingBuffer(bad), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /initialCapacity/);
      assert.match(error.message, new RegExp(String(bad)));
      return true;
    });
  }
});
