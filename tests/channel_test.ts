import assert from "node:assert/strict";
import { Channel, ChannelClosedError, QueueFullError } from "../lib/channel.ts";
import { isPending, withDeadline } from "./_helpers.ts";

/** A channel of `capacity` holding 0..capacity-1, with no receiver. */
async function fullChannel(
  capacity: number,
  overflow: "block" | "reject" = "block",
): Promise<Channel<number>> {
  const channel = new Channel<number>({ capacity, overflow });
  for (let i = 0; i < capacity; i++) await channel.send(i);
  return channel;
}

Deno.test("Channel constructor throws naming the option when capacity or overflow is bad", () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new Channel({ capacity: bad }), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /^Cannot create channel: capacity /);
      assert.ok(error.message.includes(String(bad)), error.message);
      return true;
    });
  }
  assert.throws(
    () => new Channel({ capacity: "4" as unknown as number }),
    (error: unknown) =>
      error instanceof TypeError && /capacity/.test(error.message),
  );
  assert.throws(
    () => new Channel({ overflow: "drop" as unknown as "block" }),
    (error: unknown) =>
      error instanceof RangeError && /overflow/.test(error.message) &&
      /"drop"/.test(error.message),
  );
  using channel = new Channel();
  assert.equal(channel.capacity, 1024);
  assert.equal(channel.overflow, "block");
});

Deno.test("Channel.send() stays pending when full under block and resolves when a receive frees a slot", async () => {
  using channel = await fullChannel(4);
  const fifth = channel.send(4);
  assert.equal(await isPending(fifth), true);
  assert.equal(channel.depth, 4);
  assert.equal(channel.waitingSenders, 1);
  assert.equal(await channel.receive(), 0);
  await withDeadline(fifth, 1000, "fifth send");
  assert.equal(channel.depth, 4);
  assert.equal(channel.waitingSenders, 0);
  const drained = [1, 2, 3, 4].map(() => channel.tryReceive());
  assert.deepEqual(drained, [1, 2, 3, 4]);
  const stats = channel.stats();
  assert.equal(stats.blockedSends, 1);
  assert.equal(stats.sent, 5);
  assert.equal(stats.received, 5);
  assert.equal(stats.highWaterMark, 4);
});

Deno.test("Channel.send() throws QueueFullError carrying the value when full under reject", async () => {
  using channel = await fullChannel(4, "reject");
  const error = await channel.send(4).catch((e: unknown) => e);
  assert.ok(error instanceof QueueFullError);
  assert.equal(error.name, "QueueFullError");
  assert.equal(error.value, 4);
  assert.equal(error.capacity, 4);
  assert.match(error.message, /^Cannot send: channel is full/);
  const stats = channel.stats();
  assert.equal(stats.rejections, 1);
  assert.equal(stats.sent, 4);
  assert.equal(stats.blockedSends, 0);
  assert.equal(channel.depth, 4);
  assert.equal(channel.waitingSenders, 0);
  assert.equal(channel.trySend(5), false);
  assert.equal(
    channel.stats().rejections,
    1,
    "trySend false is not a rejection",
  );
});

Deno.test("Channel.reserve() throws QueueFullError and counts it when full under reject", async () => {
  using channel = await fullChannel(2, "reject");
  const error = await channel.reserve().catch((e: unknown) => e);
  assert.ok(error instanceof QueueFullError);
  assert.equal(error.value, undefined);
  assert.equal(channel.stats().rejections, 1);
  assert.equal(channel.tryReserve(), undefined);
});

Deno.test("Channel.send() leaves depth and waiting senders exact when its signal aborts", async () => {
  using channel = await fullChannel(1);
  const controller = new AbortController();
  const aborted = channel.send(100, { signal: controller.signal });
  const kept = channel.send(200);
  assert.equal(channel.waitingSenders, 2);
  const reason = new Error("give up");
  controller.abort(reason);
  await assert.rejects(aborted, (error) => error === reason);
  assert.equal(channel.waitingSenders, 1);
  assert.equal(channel.depth, 1);
  assert.equal(await channel.receive(), 0);
  await withDeadline(kept, 1000, "kept send");
  assert.equal(channel.tryReceive(), 200);
  assert.equal(
    channel.tryReceive(),
    undefined,
    "the aborted value never entered",
  );
  assert.equal(channel.stats().sent, 2);
});

Deno.test("Channel.send() rejects with TimeoutError when timeoutMs passes first", async () => {
  using channel = await fullChannel(1);
  const started = performance.now();
  await withDeadline(
    assert.rejects(channel.send(1, { timeoutMs: 20 }), {
      name: "TimeoutError",
    }),
    2000,
    "timed-out send",
  );
  const waited = performance.now() - started;
  assert.equal(channel.depth, 1);
  assert.equal(channel.waitingSenders, 0);
  const stats = channel.stats();
  assert.equal(stats.blockedSends, 1);
  assert.equal(stats.blockedTimeMaxMs, stats.blockedTimeTotalMs);
  assert.ok(
    stats.blockedTimeMaxMs >= 15,
    `blocked ${stats.blockedTimeMaxMs} ms`,
  );
  assert.ok(
    stats.blockedTimeMaxMs <= waited + 1,
    `blocked ${stats.blockedTimeMaxMs} ms of ${waited}`,
  );
});

Deno.test("Channel.send() throws a RangeError when timeoutMs is negative", async () => {
  using channel = new Channel<number>();
  await assert.rejects(channel.send(1, { timeoutMs: -1 }), RangeError);
  assert.equal(channel.depth, 0);
});

Deno.test("Channel.close() rejects blocked senders and lets receivers drain the queued items", async () => {
  const channel = await fullChannel(4);
  const blocked = [channel.send(4), channel.send(5)];
  assert.equal(channel.waitingSenders, 2);
  channel.close();
  for (const send of blocked) {
    await assert.rejects(send, (error: unknown) => {
      assert.ok(error instanceof ChannelClosedError);
      assert.equal(error.name, "ChannelClosedError");
      assert.match(error.message, /^Cannot send: /);
      return true;
    });
  }
  assert.equal(channel.waitingSenders, 0);
  assert.equal(channel.closed, true);
  await assert.rejects(channel.send(6), ChannelClosedError);
  assert.throws(() => channel.trySend(6), ChannelClosedError);
  const drained = await withDeadline(Array.fromAsync(channel), 1000, "drain");
  assert.deepEqual(drained, [0, 1, 2, 3]);
  await assert.rejects(channel.receive(), ChannelClosedError);
  assert.equal(channel.stats().sent, 4);
});

Deno.test("Channel.close() drops a sender granted a slot in the same turn", async () => {
  const channel = await fullChannel(1);
  const blocked = channel.send(1);
  assert.equal(channel.tryReceive(), 0); // hands the slot to the blocked sender
  channel.close(); // before that sender resumes
  await assert.rejects(blocked, ChannelClosedError);
  assert.equal(channel.depth, 0);
  assert.deepEqual(await Array.fromAsync(channel), []);
  assert.equal(channel.stats().sent, 1);
});

Deno.test("Channel.close() wakes waiting receivers with ChannelClosedError when empty", async () => {
  const channel = new Channel<number>();
  const receives = [channel.receive(), channel.receive()];
  assert.equal(channel.waitingReceivers, 2);
  channel.close();
  channel.close();
  for (const receive of receives) {
    await assert.rejects(
      receive,
      (error: unknown) =>
        error instanceof ChannelClosedError &&
        error.message === "Cannot receive: channel is closed and drained",
    );
  }
  assert.equal(channel.waitingReceivers, 0);
});

Deno.test("Channel[Symbol.asyncIterator]() ends when the channel closes while it waits", async () => {
  const channel = new Channel<string>();
  const seen: string[] = [];
  const loop = (async () => {
    for await (const value of channel) seen.push(value);
  })();
  await channel.send("a");
  assert.equal(await isPending(loop), true);
  channel.close();
  await withDeadline(loop, 1000, "iteration end");
  assert.deepEqual(seen, ["a"]);
});

Deno.test("Channel.send() hands the value to the oldest waiting receiver when one waits", async () => {
  using channel = new Channel<string>({ capacity: 1 });
  const first = channel.receive();
  const second = channel.receive();
  await channel.send("a");
  await channel.send("b");
  assert.equal(await withDeadline(first, 1000, "first receive"), "a");
  assert.equal(await withDeadline(second, 1000, "second receive"), "b");
  assert.equal(channel.depth, 0);
  assert.equal(channel.stats().highWaterMark, 0);
  assert.equal(channel.waitingReceivers, 0);
});

Deno.test("Channel.receive() takes no value when its signal aborts first", async () => {
  using channel = new Channel<number>();
  const controller = new AbortController();
  const aborted = channel.receive(controller.signal);
  const kept = channel.receive();
  controller.abort();
  await assert.rejects(aborted, { name: "AbortError" });
  assert.equal(channel.waitingReceivers, 1);
  await channel.send(1);
  await channel.send(2);
  assert.equal(await withDeadline(kept, 1000, "kept receive"), 1);
  assert.equal(channel.depth, 1);
  assert.equal(channel.tryReceive(), 2);
});

Deno.test("ChannelSlot.send() queues without waiting when a slot was reserved", async () => {
  using channel = new Channel<string>({ capacity: 1 });
  const slot = await channel.reserve();
  assert.equal(channel.reserved, 1);
  assert.equal(channel.trySend("other"), false, "the reserved slot is held");
  const blocked = channel.reserve();
  assert.equal(await isPending(blocked), true);
  slot.send("x");
  assert.equal(slot.used, true);
  assert.equal(channel.depth, 1);
  assert.equal(channel.tryReceive(), "x");
  const second = await withDeadline(blocked, 1000, "second reservation");
  second[Symbol.dispose]();
  second[Symbol.dispose]();
  assert.equal(channel.reserved, 0);
  assert.equal(channel.trySend("y"), true);
  assert.throws(
    () => slot.send("z"),
    /^Error: Cannot send into slot: the reservation was used/,
  );
  assert.equal(channel.stats().blockedSends, 1);
});

Deno.test("ChannelSlot gives its slot back on every exit path when held with using", async () => {
  using channel = new Channel<string>({ capacity: 1 });
  const fail = async (): Promise<void> => {
    using _slot = await channel.reserve();
    throw new Error("the insert failed");
  };
  await assert.rejects(fail(), /the insert failed/);
  assert.equal(channel.reserved, 0);
  {
    using slot = await channel.reserve();
    slot.send("kept");
  }
  assert.equal(channel.reserved, 0);
  assert.equal(channel.tryReceive(), "kept");
});

Deno.test("ChannelSlot.send() throws ChannelClosedError when the channel closed after the reservation", async () => {
  const channel = new Channel<string>({ capacity: 1 });
  const slot = channel.tryReserve();
  assert.ok(slot !== undefined);
  channel.close();
  assert.throws(() => slot.send("late"), ChannelClosedError);
  assert.equal(channel.reserved, 0);
  slot[Symbol.dispose]();
  assert.equal(channel.reserved, 0);
  assert.equal(channel.depth, 0);
  await assert.rejects(channel.reserve(), ChannelClosedError);
  assert.throws(() => channel.tryReserve(), ChannelClosedError);
});

Deno.test("Channel.reserve() rejects with ChannelClosedError when the channel closes while it waits", async () => {
  const channel = await fullChannel(1);
  const waiting = channel.reserve({ timeoutMs: 5000 });
  channel.close();
  await assert.rejects(waiting, ChannelClosedError);
  assert.equal(channel.waitingSenders, 0);
});

Deno.test("Channel[Symbol.dispose]() closes the channel", () => {
  let outer: Channel<number> | undefined;
  {
    using channel = new Channel<number>();
    outer = channel;
    assert.equal(channel.closed, false);
  }
  assert.equal(outer.closed, true);
});

Deno.test("Channel.receive() yields every item exactly once when 8 producers and 4 consumers share capacity 16", async () => {
  const producers = 8;
  const perProducer = 1000;
  const channel = new Channel<number>({ capacity: 16 });
  const produce = async (p: number): Promise<void> => {
    for (let i = 0; i < perProducer; i++) {
      await channel.send(p * perProducer + i);
    }
  };
  const consume = async (): Promise<number[]> => {
    const got: number[] = [];
    for await (const value of channel) got.push(value);
    return got;
  };
  const consumers = Array.from({ length: 4 }, consume);
  await withDeadline(
    Promise.all(Array.from({ length: producers }, (_, p) => produce(p))),
    5000,
    "producers",
  );
  channel.close();
  const results = await withDeadline(Promise.all(consumers), 5000, "consumers");
  const all = results.flat();
  assert.equal(all.length, producers * perProducer);
  assert.equal(new Set(all).size, producers * perProducer);
  for (const got of results) {
    // Each consumer sees each producer's items in send order.
    const last = new Map<number, number>();
    for (const value of got) {
      const p = Math.floor(value / perProducer);
      assert.ok((last.get(p) ?? -1) < value);
      last.set(p, value);
    }
  }
  const stats = channel.stats();
  assert.equal(stats.sent, producers * perProducer);
  assert.equal(stats.received, producers * perProducer);
  assert.ok(stats.highWaterMark <= 16 && stats.highWaterMark > 0);
  assert.ok(stats.blockedSends > 0, "producers outpace capacity 16");
  assert.ok(stats.blockedTimeTotalMs >= stats.blockedTimeMaxMs);
  assert.equal(stats.depth, 0);
});
