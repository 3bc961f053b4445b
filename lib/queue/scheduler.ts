/**
 * Schedules: a task submitted at every tick of a cron expression, by any
 * number of consuming processes on one store, each tick exactly once.
 *
 * A schedule is a row of the store (name, cron, time zone, task template,
 * next and last tick). Every consuming queue runs a {@linkcode Scheduler}:
 * a timer that wakes at the earliest next tick (and at least every
 * `refreshMs`, to see schedules other processes added), and fires the
 * schedules due. Firing is one store transaction: a compare-and-set on the
 * schedule's version that advances `lastTick`, and the insert of the
 * tick's task with the idempotency key `schedule:NAME:ISO-TICK`. Of the
 * processes that fire a tick at once, one inserts it; a tick recorded as
 * run is never inserted again, even once retention has pruned its task
 * and freed its key.
 *
 * Missed ticks (every process was down, or too busy to wake in time): the
 * most recent tick that is due runs once, late; the older ones are skipped.
 * A schedule never catches up with a burst.
 *
 * @module
 */
import { Cron } from "npm:croner@11.0.0";
import { uuidv7 } from "../_id.ts";
import { checkText } from "./intake.ts";
import { checkQueueName, isPriority, MAX_PRIORITY } from "../store/_shared.ts";
import type {
  NewTask,
  ScheduleRecord,
  ScheduleTask,
  TaskStore,
} from "../store/store.ts";

/** Options of {@linkcode TaskQueue.schedule}. */
export interface ScheduleOptions {
  /**
   * The IANA time zone the cron expression is read in
   * (`"Europe/Berlin"`): `0 9 * * *` is 09:00 there, across daylight
   * saving changes.
   *
   * @default {"UTC"}
   */
  tz?: string;
}

/**
 * The clock and timers a {@linkcode Scheduler} runs on; tests pass one
 * they advance by hand.
 */
export interface SchedulerClock {
  /**
   * The current time.
   *
   * @returns Epoch milliseconds.
   */
  now(): number;
  /**
   * Calls `callback` once, `ms` milliseconds from now.
   *
   * @param callback What to call.
   * @param ms The delay.
   * @returns A handle for `clearTimeout`.
   */
  setTimeout(callback: () => void, ms: number): unknown;
  /**
   * Cancels a pending call.
   *
   * @param handle What `setTimeout` returned.
   */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `Date.now` and the global timers. */
export const SYSTEM_CLOCK: SchedulerClock = Object.freeze({
  now: (): number => Date.now(),
  setTimeout: (callback: () => void, ms: number): unknown =>
    setTimeout(callback, ms),
  clearTimeout: (handle: unknown): void =>
    clearTimeout(handle as ReturnType<typeof setTimeout>),
});

/** How a consuming queue runs its schedules. */
export interface SchedulerOptions {
  /**
   * The clock ticks are judged by and timers set on.
   *
   * @default {SYSTEM_CLOCK}
   */
  clock?: SchedulerClock;
  /**
   * The longest the scheduler sleeps before reading the schedules again
   * (to see those other processes added or changed), in ms.
   *
   * @default {1000}
   */
  refreshMs?: number;
}

/** Largest timer delay: longer ones fire at once. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Reads a cron expression in a time zone, refusing a bad one.
 *
 * @param cron 5 fields (minute to day of week), or 6 with seconds first.
 * @param tz An IANA time zone.
 * @param action What the caller does, for the message ("schedule x").
 * @returns The parsed expression.
 * @throws {TypeError} When `cron` or `tz` is not a string.
 * @throws {RangeError} When `cron` is not a valid expression, `tz` is no
 *   IANA time zone, or the expression never fires.
 */
export function parseCron(cron: string, tz: string, action: string): Cron {
  if (typeof cron !== "string") {
    throw new TypeError(
      `Cannot ${action}: cron must be a string, got ${typeof cron}`,
    );
  }
  if (typeof tz !== "string") {
    throw new TypeError(
      `Cannot ${action}: tz must be a string, got ${typeof tz}`,
    );
  }
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    throw new RangeError(
      `Cannot ${action}: tz must be an IANA time zone such as "Europe/Berlin", got ${
        JSON.stringify(tz)
      }`,
    );
  }
  let parsed: Cron;
  try {
    parsed = new Cron(cron, { timezone: tz });
  } catch (error) {
    throw new RangeError(
      `Cannot ${action}: cron ${
        JSON.stringify(cron)
      } is not a valid cron expression (${(error as Error).message})`,
      { cause: error },
    );
  }
  if (parsed.nextRun() === null) {
    throw new RangeError(
      `Cannot ${action}: cron ${JSON.stringify(cron)} never fires`,
    );
  }
  return parsed;
}

/**
 * The first tick strictly after `at`.
 *
 * @param cron The expression.
 * @param at Epoch ms.
 * @returns The tick, or `null` when there is none.
 */
export function tickAfter(cron: Cron, at: number): number | null {
  return cron.nextRun(new Date(at))?.getTime() ?? null;
}

/**
 * The latest tick at or before `now`, given `first`, a tick at or before
 * `now`: the tick a late scheduler runs (the ones between are skipped).
 * Found by looking back 1 s, 2 s, 4 s, … from `now`, so a schedule that
 * missed a day of ticks costs a few steps, not one per missed tick.
 *
 * @param cron The expression.
 * @param first A tick at or before `now`.
 * @param now Epoch ms.
 * @returns The tick.
 */
export function latestTick(cron: Cron, first: number, now: number): number {
  let from = first;
  for (let back = 1000; now - back > first; back *= 2) {
    const tick = tickAfter(cron, now - back);
    if (tick !== null && tick <= now) {
      from = tick;
      break;
    }
  }
  for (;;) {
    const tick = tickAfter(cron, from);
    if (tick === null || tick > now) return from;
    from = tick;
  }
}

/**
 * The idempotency key of a schedule's task for one tick.
 *
 * @param name The schedule's name.
 * @param tick The tick (epoch ms).
 * @returns `schedule:NAME:ISO-TICK`.
 */
export function tickKey(name: string, tick: number): string {
  return `schedule:${name}:${new Date(tick).toISOString()}`;
}

/** The schedule methods of a store, or a clear error. */
function scheduleStore(
  store: TaskStore,
  action: string,
): Required<
  Pick<
    TaskStore,
    "putSchedule" | "deleteSchedule" | "listSchedules" | "fireSchedule"
  >
> {
  const { putSchedule, deleteSchedule, listSchedules, fireSchedule } = store;
  if (
    putSchedule === undefined || deleteSchedule === undefined ||
    listSchedules === undefined || fireSchedule === undefined
  ) {
    throw new TypeError(
      `Cannot ${action}: the ${store.kind} store holds no schedules`,
    );
  }
  return {
    putSchedule: putSchedule.bind(store),
    deleteSchedule: deleteSchedule.bind(store),
    listSchedules: listSchedules.bind(store),
    fireSchedule: fireSchedule.bind(store),
  };
}

/**
 * Checks a schedule and stores it (replacing the one of the same name),
 * its first tick the first after `now`.
 *
 * @param store Where schedules live.
 * @param name The schedule's name.
 * @param cron The cron expression.
 * @param task The task each tick submits.
 * @param options The time zone.
 * @param now Epoch ms.
 * @returns The stored schedule.
 * @throws {TypeError} When a field has the wrong type, the payload cannot
 *   be stored, or the store holds no schedules.
 * @throws {RangeError} When the cron expression or time zone is invalid,
 *   or a number is out of range.
 */
export async function putSchedule(
  store: TaskStore,
  name: string,
  cron: string,
  task: ScheduleTask,
  options: ScheduleOptions = {},
  now: number = Date.now(),
): Promise<ScheduleRecord> {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot schedule: name must be a non-empty string, got ${
        JSON.stringify(name)
      }`,
    );
  }
  const action = `schedule ${JSON.stringify(name)}`;
  checkText(name, action, "name");
  const tz = options.tz ?? "UTC";
  const parsed = parseCron(cron, tz, action);
  const template = checkTask(store, task, action);
  return await scheduleStore(store, action).putSchedule({
    name,
    cron,
    tz,
    task: template,
    nextTick: tickAfter(parsed, now),
  }, now);
}

/** The template as stored: only its known fields, checked. */
function checkTask(
  store: TaskStore,
  task: ScheduleTask,
  action: string,
): ScheduleTask {
  if (typeof task !== "object" || task === null) {
    throw new TypeError(
      `Cannot ${action}: task must be an object, got ${String(task)}`,
    );
  }
  const { type, payload = null, maxAttempts, queue, priority } = task;
  if (typeof type !== "string" || type === "") {
    throw new TypeError(
      `Cannot ${action}: task.type must be a non-empty string`,
    );
  }
  checkText(type, action, "task.type");
  if (
    maxAttempts !== undefined &&
    (!Number.isInteger(maxAttempts) || maxAttempts < 1)
  ) {
    throw new RangeError(
      `Cannot ${action}: task.maxAttempts must be an integer >= 1, got ${maxAttempts}`,
    );
  }
  if (queue !== undefined) {
    if (typeof queue !== "string" || queue === "") {
      throw new TypeError(
        `Cannot ${action}: task.queue must be a non-empty string`,
      );
    }
    checkQueueName(queue, "task.queue", action);
  }
  if (priority !== undefined && !isPriority(priority)) {
    throw new RangeError(
      `Cannot ${action}: task.priority must be an integer from -${MAX_PRIORITY} to ${MAX_PRIORITY}, got ${priority}`,
    );
  }
  try {
    store.checkValue(payload, "payload");
  } catch (error) {
    const reason = (error as Error).message.replace(/^Cannot [^:]*: /, "");
    throw new TypeError(`Cannot ${action}: ${reason}`, { cause: error });
  }
  return {
    type,
    payload,
    ...(maxAttempts !== undefined && { maxAttempts }),
    ...(queue !== undefined && { queue }),
    ...(priority !== undefined && { priority }),
  };
}

/**
 * Deletes a schedule.
 *
 * @param store Where schedules live.
 * @param name Its name.
 * @returns `false` when there was none.
 * @throws {TypeError} When the store holds no schedules.
 */
export async function deleteSchedule(
  store: TaskStore,
  name: string,
): Promise<boolean> {
  return await scheduleStore(store, `unschedule ${JSON.stringify(name)}`)
    .deleteSchedule(name);
}

/**
 * Every schedule of a store, by name.
 *
 * @param store Where schedules live.
 * @returns The schedules.
 * @throws {TypeError} When the store holds no schedules.
 */
export async function listSchedules(
  store: TaskStore,
): Promise<ScheduleRecord[]> {
  return await scheduleStore(store, "list schedules").listSchedules();
}

/** What the {@linkcode Scheduler} needs from its queue. */
export interface SchedulerHooks {
  /** The attempt limit of a task whose template sets none. */
  maxAttempts: number;
  /** A tick's task was inserted (not a duplicate). */
  fired(schedule: ScheduleRecord, tick: number, task: NewTask): void;
  /** Reading or firing schedules failed; retried at the next wake-up. */
  failed(error: unknown): void;
}

/**
 * Runs the schedules of a store from one consuming queue: sleeps until the
 * earliest next tick (or `refreshMs`), then fires every schedule due.
 * Owned by the queue: started with it, stopped by `close`.
 */
export class Scheduler {
  #store: TaskStore;
  #hooks: SchedulerHooks;
  #clock: SchedulerClock;
  #refreshMs: number;
  #crons = new Map<string, Cron>();
  #timer: unknown;
  #round: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  /**
   * @param store Where the schedules live.
   * @param hooks The queue's side.
   * @param options Clock and refresh interval.
   * @throws {RangeError} When `refreshMs` is not a positive integer.
   * @throws {TypeError} When `clock` lacks a method.
   */
  constructor(
    store: TaskStore,
    hooks: SchedulerHooks,
    options: SchedulerOptions = {},
  ) {
    const refreshMs = options.refreshMs ?? 1000;
    if (
      !Number.isInteger(refreshMs) || refreshMs < 1 || refreshMs > MAX_DELAY_MS
    ) {
      throw new RangeError(
        `Cannot open queue: scheduler.refreshMs must be an integer from 1 to ${MAX_DELAY_MS}, got ${refreshMs}`,
      );
    }
    const clock = options.clock ?? SYSTEM_CLOCK;
    for (const method of ["now", "setTimeout", "clearTimeout"] as const) {
      if (typeof clock?.[method] !== "function") {
        throw new TypeError(
          `Cannot open queue: scheduler.clock.${method} must be a function`,
        );
      }
    }
    this.#store = store;
    this.#hooks = hooks;
    this.#clock = clock;
    this.#refreshMs = refreshMs;
  }

  /** Starts: a first round at once. */
  start(): void {
    this.#arm(0);
  }

  /** Runs a round soon: a schedule was added or changed here. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#round !== null) this.#again = true;
    else this.#arm(0);
  }

  /** Stops; resolves once the round in progress has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      let wakeAt = this.#clock.now() + this.#refreshMs;
      this.#round = this.runDue().then(
        (at) => {
          wakeAt = at;
        },
        (error) => this.#hooks.failed(error),
      ).finally(() => {
        this.#round = null;
        const again = this.#again;
        this.#again = false;
        this.#arm(again ? 0 : Math.max(0, wakeAt - this.#clock.now()));
      });
    }, Math.min(delayMs, MAX_DELAY_MS));
  }

  /**
   * Fires every schedule due now, one transaction each.
   *
   * @returns When to look again: the earliest next tick, at most
   *   `refreshMs` from now.
   */
  async runDue(): Promise<number> {
    const store = scheduleStore(this.#store, "run schedules");
    const now = this.#clock.now();
    let wakeAt = now + this.#refreshMs;
    let failure: unknown;
    for (const schedule of await store.listSchedules()) {
      if (schedule.nextTick === null) continue;
      try {
        const next = schedule.nextTick <= now
          ? await this.#fire(store.fireSchedule, schedule, now)
          : schedule.nextTick;
        if (next !== null) wakeAt = Math.min(wakeAt, next);
      } catch (error) {
        // One schedule's failure does not hold the others up.
        failure ??= error;
      }
    }
    if (failure !== undefined) this.#hooks.failed(failure);
    return wakeAt;
  }

  /** Fires the latest due tick of `schedule`; returns the tick after it. */
  async #fire(
    fire: NonNullable<TaskStore["fireSchedule"]>,
    schedule: ScheduleRecord,
    now: number,
  ): Promise<number | null> {
    const cron = this.#cron(schedule);
    const tick = latestTick(cron, schedule.nextTick!, now);
    const nextTick = tickAfter(cron, tick);
    const template = schedule.task;
    const task: NewTask = {
      ...(template.queue !== undefined && { queue: template.queue }),
      ...(template.priority !== undefined && { priority: template.priority }),
      id: uuidv7(),
      type: template.type,
      idempotencyKey: tickKey(schedule.name, tick),
      payload: template.payload ?? null,
      maxAttempts: template.maxAttempts ?? this.#hooks.maxAttempts,
      runAt: tick,
      dedupeUntil: null,
    };
    const outcome = await fire({
      name: schedule.name,
      version: schedule.version,
      tick,
      nextTick,
      task,
      now,
    });
    if (outcome.fired && outcome.inserted?.inserted === true) {
      this.#hooks.fired(schedule, tick, task);
    }
    return nextTick;
  }

  #cron(schedule: ScheduleRecord): Cron {
    const key = `${schedule.tz}\n${schedule.cron}`;
    let cron = this.#crons.get(key);
    if (cron === undefined) {
      cron = parseCron(
        schedule.cron,
        schedule.tz,
        `run schedule ${JSON.stringify(schedule.name)}`,
      );
      this.#crons.set(key, cron);
    }
    return cron;
  }
}
