/**
 * One question: what does a send+receive pair cost at depth 1,000 through
 * the bounded channel, against the original design's unbounded array
 * guarded by one async mutex (held to push and held to pop)?
 *
 * Each measured iteration moves PAIRS values; divide the reported time by
 * PAIRS for the per-pair cost.
 *
 * @module
 */

import { Channel } from "../lib/channel.ts";
import { AsyncMutex } from "../input/baseline.ts";

const DEPTH = 1_000;
const PAIRS = 10_000;

Deno.bench({
  name: "mutex + array: send+receive x10,000 at depth 1,000",
  group: "channel vs mutex+array",
  baseline: true,
  n: 200,
  warmup: 20,
  async fn(b: Deno.BenchContext): Promise<void> {
    const queue: number[] = [];
    const mutex = new AsyncMutex();
    for (let i = 0; i < DEPTH; i++) queue.push(i);
    let sum = 0;
    b.start();
    for (let i = 0; i < PAIRS; i++) {
      await mutex.lock();
      queue.push(i);
      mutex.unlock();
      await mutex.lock();
      sum += queue.shift() as number;
      mutex.unlock();
    }
    b.end();
    if (queue.length !== DEPTH || sum < 0) {
      throw new Error("Cannot bench: lost items");
    }
  },
});

Deno.bench({
  name: "Channel: send+receive x10,000 at depth 1,000",
  group: "channel vs mutex+array",
  n: 200,
  warmup: 20,
  async fn(b: Deno.BenchContext): Promise<void> {
    using channel = new Channel<number>({ capacity: 2 * DEPTH });
    for (let i = 0; i < DEPTH; i++) channel.trySend(i);
    let sum = 0;
    b.start();
    for (let i = 0; i < PAIRS; i++) {
      await channel.send(i);
      sum += await channel.receive();
    }
    b.end();
    if (channel.depth !== DEPTH || sum < 0) {
      throw new Error("Cannot bench: lost items");
    }
  },
});
