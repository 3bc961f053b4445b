/**
 * Schedules through the queue, on a clock the tests move by hand: ticks
 * run when the clock reaches them, missed ticks run once (the latest),
 * and queues sharing a store run each tick once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TaskQueue } from "../../lib/queue/task_queue.ts";
import {
  latestTick,
  parseCron,
  type SchedulerClock,
  tickAfter,
  tickKey,
} from "../../lib/queue/scheduler.ts";
import { QueueClosedError } from "../../lib/queue/types.ts";
import { tempDir, waitFor } from "../_helpers.ts";

/** A clock that moves only when told; its timers fire as it passes them. */
class ManualClock implements SchedulerClock {
  #now: number;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #nextId = 1;

  constructor(now: number) {
    this.#now = now;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** When the earliest timer fires, or `undefined`. */
  get nextTimer(): number | undefined {
    let first: number | undefined;
    for (const { at } of this.#timers.values()) {
      if (first === undefined || at < first) first = at;
    }
    return first;
  }

  /** How many timers fire at `time`. */
  timersAt(time: number): number {
    let n = 0;
    for (const timer of this.#timers.values()) if (timer.at === time) n++;
    return n;
  }

  /** Moves to `to` (never back), firing every timer due by then. */
  advance(to: number = this.#now): void {
    this.#now = Math.max(this.#now, to);
    for (const [id, timer] of [...this.#timers]) {
      if (timer.at <= this.#now) {
        this.#timers.delete(id);
        timer.callback();
      }
    }
  }
}

const at = (iso: string): number => new Date(iso).getTime();

/**
 * Fires the clock's due timers until `queues` schedulers all sleep until
 * `wakeAt` (a round sets its next timer once its store calls return).
 */
async function sleepingUntil(
  clock: ManualClock,
  wakeAt: number,
  queues = 1,
): Promise<void> {
  await waitFor(() => {
    clock.advance();
    return clock.nextTimer === wakeAt && clock.timersAt(wakeAt) === queues;
  }, {
    what: `the scheduler to sleep until ${new Date(wakeAt).toISOString()}`,
  });
}

/** The idempotency keys of the tasks a store holds, sorted. */
async function scheduledKeys(queue: TaskQueue): Promise<string[]> {
  return (await queue.store.list())
    .map((task) => task.idempotencyKey ?? "")
    .filter((key) => key.startsWith("schedule:"))
    .sort();
}

Deno.test("TaskQueue.schedule() runs each tick when the clock reaches it, and only the latest of the ticks missed", async () => {
  const clock = new ManualClock(at("2025-01-01T00:00:30Z"));
  await using queue = await TaskQueue.open({
    workers: 1,
    scheduler: { clock, refreshMs: 3_600_000 },
  });
  const succeeded: string[] = [];
  queue.on("succeeded", (event) => {
    if (event.idempotencyKey !== null) succeeded.push(event.idempotencyKey);
  });
  const schedule = await queue.schedule("five", "*/5 * * * *", {
    type: "noop",
    payload: { from: "schedule" },
  });
  assert.equal(schedule.nextTick, at("2025-01-01T00:05:00Z"));
  assert.equal(schedule.lastTick, null);
  assert.equal(schedule.tz, "UTC");
  await sleepingUntil(clock, at("2025-01-01T00:05:00Z"));
  assert.deepEqual(await scheduledKeys(queue), []);

  clock.advance(at("2025-01-01T00:05:00Z"));
  const first = "schedule:five:2025-01-01T00:05:00.000Z";
  await waitFor(() => succeeded.includes(first), { what: first });
  await sleepingUntil(clock, at("2025-01-01T00:10:00Z"));
  const [after] = await queue.schedules();
  assert.equal(after?.lastTick, at("2025-01-01T00:05:00Z"));
  assert.equal(after?.nextTick, at("2025-01-01T00:10:00Z"));
  assert.deepEqual((await queue.store.getByKey(first))?.payload, {
    from: "schedule",
  });

  // Down (or asleep) through 00:10, 00:15, 00:20 and 00:25: one run, 00:25.
  clock.advance(at("2025-01-01T00:27:10Z"));
  const latest = "schedule:five:2025-01-01T00:25:00.000Z";
  await waitFor(() => succeeded.includes(latest), { what: latest });
  await sleepingUntil(clock, at("2025-01-01T00:30:00Z"));
  assert.deepEqual(await scheduledKeys(queue), [first, latest]);
  assert.deepEqual(succeeded, [first, latest]);

  assert.equal(await queue.unschedule("five"), true);
  assert.equal(await queue.unschedule("five"), false);
  clock.advance(at("2025-01-01T01:00:00Z"));
  await sleepingUntil(clock, at("2025-01-01T02:00:00Z"));
  assert.deepEqual(await scheduledKeys(queue), [first, latest]);
});

Deno.test("TaskQueue.schedule() runs a tick once when several queues share the store", async () => {
  await using dir = await tempDir();
  const clock = new ManualClock(at("2025-03-01T12:00:00.400Z"));
  const db = `${dir.path}/tasks.db`;
  const open = (): Promise<TaskQueue> =>
    TaskQueue.open({ db, workers: 1, scheduler: { clock, refreshMs: 60_000 } });
  await using a = await open();
  await using b = await open();
  await using c = await open();
  // Added through one queue, seen by the others at their next read.
  await a.schedule("second", "* * * * * *", { type: "noop", maxAttempts: 2 });
  const second = at("2025-03-01T12:00:01Z");
  await waitFor(async () => {
    clock.advance();
    return (await a.schedules())[0]?.nextTick === second;
  }, { what: "the schedule" });
  // b and c read the schedules at their first round (at open).
  await sleepingUntil(clock, second, 3);
  for (let tick = second; tick < second + 5000; tick += 1000) {
    clock.advance(tick);
    await sleepingUntil(clock, tick + 1000, 3);
  }
  const keys = await scheduledKeys(a);
  assert.deepEqual(
    keys,
    [0, 1, 2, 3, 4].map((i) => tickKey("second", second + i * 1000)),
  );
  // Five rows inserted in all: no tick was inserted twice, even as a
  // duplicate answered by its key.
  assert.equal((await a.store.status(Date.now())).totals.submitted, 5);
  const tasks = await a.store.list();
  assert.ok(tasks.every((task) => task.maxAttempts === 2));
  await Promise.all([a.drain(), b.drain(), c.drain()]);
});

Deno.test("TaskQueue.schedule() reads the cron expression in the time zone given", async () => {
  await using queue = await TaskQueue.open({ consume: false });
  const winter = await queue.schedule("nine", "0 9 * * *", { type: "noop" }, {
    tz: "Europe/Berlin",
  });
  assert.equal(new Date(winter.nextTick!).getUTCMinutes(), 0);
  assert.ok([7, 8].includes(new Date(winter.nextTick!).getUTCHours()));
  assert.equal(winter.tz, "Europe/Berlin");
  const berlin = parseCron("0 9 * * *", "Europe/Berlin", "test");
  assert.equal(
    tickAfter(berlin, at("2026-01-10T00:00:00Z")),
    at("2026-01-10T08:00:00Z"),
  );
  assert.equal(
    tickAfter(berlin, at("2026-07-10T00:00:00Z")),
    at("2026-07-10T07:00:00Z"),
  );
});

Deno.test("latestTick() finds the last tick at or before now without walking every missed one", () => {
  const everySecond = parseCron("* * * * * *", "UTC", "test");
  const from = at("2025-01-01T00:00:00Z");
  assert.equal(latestTick(everySecond, from, from), from);
  assert.equal(
    latestTick(everySecond, from, at("2025-01-02T00:00:00.900Z")),
    at("2025-01-02T00:00:00Z"),
  );
  const hourly = parseCron("0 * * * *", "UTC", "test");
  assert.equal(
    latestTick(hourly, from, at("2025-01-01T05:59:59.999Z")),
    at("2025-01-01T05:00:00Z"),
  );
  const midnightHour = parseCron("* 0 * * *", "UTC", "test");
  assert.equal(
    latestTick(midnightHour, from, at("2025-01-01T01:30:00Z")),
    at("2025-01-01T00:59:00Z"),
  );
});

Deno.test("TaskQueue.schedule() refuses a bad schedule with an error naming the field and value", async () => {
  await using dir = await tempDir();
  await using queue = await TaskQueue.open({
    db: `${dir.path}/tasks.db`,
    consume: false,
  });
  await assert.rejects(
    queue.schedule("x", "61 * * * *", { type: "noop" }),
    {
      name: "RangeError",
      message: /cron "61 \* \* \* \*" is not a valid cron expression/,
    },
  );
  await assert.rejects(
    queue.schedule("x", "0 0 30 2 *", { type: "noop" }),
    { name: "RangeError", message: /never fires/ },
  );
  await assert.rejects(
    queue.schedule("x", "* * * * *", { type: "noop" }, { tz: "Mars/Base" }),
    {
      name: "RangeError",
      message: /tz must be an IANA time zone .*"Mars\/Base"/,
    },
  );
  await assert.rejects(
    queue.schedule("x", "* * * * *", { type: "noop", maxAttempts: 0 }),
    {
      name: "RangeError",
      message: /task.maxAttempts must be an integer >= 1, got 0/,
    },
  );
  await assert.rejects(
    queue.schedule("x", "* * * * *", { type: "" }),
    { name: "TypeError", message: /task.type/ },
  );
  await assert.rejects(
    queue.schedule("x", "* * * * *", { type: "noop", payload: new Date(0) }),
    { name: "TypeError", message: /payload/ },
  );
  await assert.rejects(
    queue.schedule("", "* * * * *", { type: "noop" }),
    { name: "TypeError", message: /name must be a non-empty string/ },
  );
  assert.deepEqual(await queue.schedules(), []);
  await queue.close();
  await assert.rejects(
    queue.schedule("x", "* * * * *", { type: "noop" }),
    QueueClosedError,
  );
});

Deno.test("TaskQueue.open() refuses a scheduler refresh interval out of range", async () => {
  await assert.rejects(
    TaskQueue.open({ workers: 1, scheduler: { refreshMs: 0 } }),
    {
      name: "RangeError",
      message: /scheduler.refreshMs must be an integer .* got 0/,
    },
  );
});
