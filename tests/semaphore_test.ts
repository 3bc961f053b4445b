import assert from "node:assert/strict";
import { Semaphore } from "../lib/semaphore.ts";
import { isPending, withDeadline } from "./_helpers.ts";

/** Counts abort listeners added to and removed from `signal`. */
function countListeners(
  signal: AbortSignal,
): { added: number; removed: number } {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>): void => {
    counts.added++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<typeof remove>): void => {
    counts.removed++;
    remove(...args);
  };
  return counts;
}

Deno.test("Semaphore constructor throws naming permits when it is not an integer >= 0", () => {
  for (const bad of [-1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => new Semaphore(bad), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /permits/);
      assert.ok(error.message.includes(String(bad)));
      return true;
    });
  }
  assert.throws(
    () => new Semaphore("2" as unknown as number),
    (error: unknown) =>
      error instanceof TypeError && /permits/.test(error.message),
  );
  assert.equal(new Semaphore(0).available, 0);
});

Deno.test("Semaphore.acquire() resolves at once when a permit is free", async () => {
  const semaphore = new Semaphore(2);
  const first = semaphore.acquire();
  assert.equal(await isPending(first), false);
  assert.equal(semaphore.available, 1);
  assert.equal(semaphore.tryAcquire(), true);
  assert.equal(semaphore.tryAcquire(), false);
  assert.equal(semaphore.available, 0);
  assert.equal(semaphore.waiting, 0);
});

Deno.test("Semaphore.acquire() grants permits in FIFO order when released one at a time", async () => {
  const semaphore = new Semaphore(0);
  const order: number[] = [];
  const waits = [0, 1, 2, 3, 4].map((i) =>
    semaphore.acquire().then(() => order.push(i))
  );
  assert.equal(semaphore.waiting, 5);
  for (let i = 0; i < 5; i++) {
    semaphore.release();
    await withDeadline(waits[i]!, 1000, `waiter ${i}`);
    assert.deepEqual(order, [0, 1, 2, 3, 4].slice(0, i + 1));
    assert.equal(semaphore.waiting, 4 - i);
  }
  assert.equal(semaphore.available, 0);
});

Deno.test("Semaphore.release() wakes exactly n waiters in order when n < waiting", async () => {
  const semaphore = new Semaphore(0);
  const order: number[] = [];
  const waits = [0, 1, 2, 3, 4].map((i) =>
    semaphore.acquire().then(() => order.push(i))
  );
  semaphore.release(3);
  assert.equal(semaphore.waiting, 2);
  assert.equal(semaphore.available, 0);
  await withDeadline(Promise.all(waits.slice(0, 3)), 1000, "three waiters");
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(await isPending(waits[3]!), true);
  assert.equal(await isPending(waits[4]!), true);
  semaphore.release(4);
  await withDeadline(Promise.all(waits), 1000, "all waiters");
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(semaphore.available, 2);
  assert.equal(semaphore.waiting, 0);
});

Deno.test("Semaphore.release() throws a RangeError when n is not an integer >= 0", () => {
  const semaphore = new Semaphore(1);
  for (const bad of [-1, 0.5, Number.NaN]) {
    assert.throws(() => semaphore.release(bad), RangeError);
  }
  semaphore.release(0);
  assert.equal(semaphore.available, 1);
});

Deno.test("Semaphore.acquire() leaves the line when its signal aborts", async () => {
  const semaphore = new Semaphore(0);
  const controller = new AbortController();
  const order: string[] = [];
  const first = semaphore.acquire().then(() => order.push("first"));
  const aborted = semaphore.acquire(controller.signal);
  const third = semaphore.acquire().then(() => order.push("third"));
  assert.equal(semaphore.waiting, 3);
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(aborted, (error) => error === reason);
  assert.equal(semaphore.waiting, 2);
  assert.equal(semaphore.available, 0);
  semaphore.release();
  await withDeadline(first, 1000, "first waiter");
  assert.equal(await isPending(third), true);
  semaphore.release();
  await withDeadline(third, 1000, "third waiter");
  assert.deepEqual(order, ["first", "third"]);
  assert.equal(semaphore.available, 0);
  assert.equal(semaphore.waiting, 0);
});

Deno.test("Semaphore.acquire() keeps its permit when a release races ahead of the abort", async () => {
  const semaphore = new Semaphore(0);
  const controller = new AbortController();
  const listeners = countListeners(controller.signal);
  const acquired = semaphore.acquire(controller.signal);
  // Both happen in one turn, before the acquire's continuation runs.
  semaphore.release();
  controller.abort();
  await withDeadline(acquired, 1000, "acquire");
  assert.equal(semaphore.available, 0, "the waiter owns the permit");
  assert.equal(semaphore.waiting, 0);
  assert.equal(listeners.added, 1);
  assert.equal(listeners.removed, 1, "listener detached on grant");
  semaphore.release();
  assert.equal(semaphore.available, 1);
});

Deno.test("Semaphore.acquire() takes no permit when the abort races ahead of the release", async () => {
  const semaphore = new Semaphore(0);
  const controller = new AbortController();
  const acquired = semaphore.acquire(controller.signal);
  controller.abort();
  semaphore.release();
  await assert.rejects(acquired, { name: "AbortError" });
  assert.equal(semaphore.available, 1, "the permit stays free");
  assert.equal(semaphore.waiting, 0);
});

Deno.test("Semaphore.acquire() rejects without taking a permit when the signal is already aborted", async () => {
  const semaphore = new Semaphore(1);
  const reason = new Error("already");
  await assert.rejects(
    semaphore.acquire(AbortSignal.abort(reason)),
    (error) => error === reason,
  );
  assert.equal(semaphore.available, 1);
  assert.equal(semaphore.waiting, 0);
});

Deno.test("Semaphore.acquire() detaches its abort listener when the wait settles", async () => {
  const semaphore = new Semaphore(0);
  const controller = new AbortController();
  const listeners = countListeners(controller.signal);
  const waits = [
    semaphore.acquire(controller.signal),
    semaphore.acquire(controller.signal),
  ];
  assert.equal(listeners.added, 2);
  semaphore.release();
  await withDeadline(waits[0]!, 1000, "first acquire");
  assert.equal(listeners.removed, 1);
  controller.abort();
  await assert.rejects(waits[1]!, { name: "AbortError" });
  assert.equal(listeners.removed, 2);
});

Deno.test("Semaphore.waiting stays exact when many aborted waiters are compacted away", async () => {
  const semaphore = new Semaphore(0);
  const controllers = Array.from({ length: 200 }, () => new AbortController());
  const granted: number[] = [];
  const waits = controllers.map((c, i) =>
    semaphore.acquire(c.signal).then(() => granted.push(i), () => {})
  );
  // Abort every index not divisible by 10: tombstones outnumber live waiters.
  for (let i = 0; i < controllers.length; i++) {
    if (i % 10 !== 0) controllers[i]!.abort();
    assert.equal(semaphore.waiting, 200 - (i + 1) + Math.floor(i / 10) + 1);
  }
  assert.equal(semaphore.waiting, 20);
  semaphore.release(25);
  await withDeadline(Promise.all(waits), 1000, "all waits");
  assert.deepEqual(granted, Array.from({ length: 20 }, (_, k) => k * 10));
  assert.equal(semaphore.available, 5);
  assert.equal(semaphore.waiting, 0);
});
