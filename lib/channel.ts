/**
 * A bounded multi-producer, multi-consumer channel with backpressure, and
 * the errors only it throws.
 *
 * @module
 */

import { RingBuffer } from "./ring_buffer.ts";
import { Semaphore } from "./semaphore.ts";
import { WaitQueue } from "./_wait_queue.ts";

const RESOLVED: Promise<void> = Promise.resolve();
const INITIAL_ITEM_SLOTS = 1024;

/**
 * What a full channel does with a new value: `"block"` makes the sender
 * wait for a free slot, `"reject"` fails the send at once with
 * {@linkcode QueueFullError}.
 */
export type OverflowPolicy = "block" | "reject";

/** Options for {@linkcode Channel}. */
export interface ChannelOptions {
  /**
   * The maximum number of values held at once: an integer >= 1.
   *
   * @default {1024}
   */
  capacity?: number | undefined;
  /**
   * What `send` and `reserve` do when the channel is full.
   *
   * @default {"block"}
   */
  overflow?: OverflowPolicy | undefined;
}

/** Options for {@linkcode Channel.prototype.send} and {@linkcode Channel.prototype.reserve}. */
export interface ChannelSendOptions {
  /**
   * Cancels the wait for a free slot.
   *
   * @default {undefined}
   */
  signal?: AbortSignal | undefined;
  /**
   * The longest time to wait for a free slot, in milliseconds; the wait then
   * rejects with a `TimeoutError` `DOMException`. A finite number >= 0.
   *
   * @default {undefined}
   */
  timeoutMs?: number | undefined;
}

/** A snapshot of a channel's counters, from {@linkcode Channel.prototype.stats}. */
export interface ChannelStats {
  /** Values held right now. */
  depth: number;
  /** The configured capacity. */
  capacity: number;
  /** The largest depth seen since the channel was created. */
  highWaterMark: number;
  /** Values that entered the channel. */
  sent: number;
  /** Values handed to receivers. */
  received: number;
  /** Sends and slot requests refused with {@linkcode QueueFullError}. */
  rejections: number;
  /** Sends and slot requests that found the channel full and had to wait. */
  blockedSends: number;
  /** Total time spent waiting by those sends, in milliseconds. */
  blockedTimeTotalMs: number;
  /** The longest single wait among those sends, in milliseconds. */
  blockedTimeMaxMs: number;
}

/**
 * Thrown by a send or slot request on a full channel whose overflow policy
 * is `"reject"`.
 *
 * @typeParam T The type of the rejected value.
 *
 * @example Catching a rejected send
 * ```ts
 * import { Channel } from "@sluice/sluice/channel";
 * import { QueueFullError } from "@sluice/sluice";
 * import assert from "node:assert/strict";
 *
 * const channel = new Channel<string>({ capacity: 1, overflow: "reject" });
 * await channel.send("a");
 * const error = await channel.send("b").catch((e) => e);
 * assert.ok(error instanceof QueueFullError);
 * assert.equal(error.value, "b");
 * assert.equal(error.capacity, 1);
 * ```
 */
export class QueueFullError<T = unknown> extends Error {
  /** The value that was refused, or `undefined` for a refused slot request. */
  readonly value: T;
  /** The capacity of the channel that refused it. */
  readonly capacity: number;

  /**
   * Creates the error.
   *
   * @param value The refused value.
   * @param capacity The capacity of the full channel.
   * @param options Standard error options; `cause` is kept.
   *
   * @example Creating the error
   * ```ts
   * import { QueueFullError } from "@sluice/sluice";
   * import assert from "node:assert/strict";
   *
   * const error = new QueueFullError({ id: 1 }, 8);
   * assert.equal(error.name, "QueueFullError");
   * assert.equal(error.message, "Cannot send: channel is full (capacity 8)");
   * ```
   */
  constructor(value: T, capacity: number, options?: ErrorOptions) {
    super(`Cannot send: channel is full (capacity ${capacity})`, options);
    this.name = "QueueFullError";
    this.value = value;
    this.capacity = capacity;
  }
}

/**
 * Thrown when sending to a closed channel, by a sender that was waiting for
 * a slot when the channel closed, and by a receive on a channel that is
 * closed and drained.
 *
 * @example Sending after close
 * ```ts
 * import { Channel, ChannelClosedError } from "@sluice/sluice/channel";
 * import assert from "node:assert/strict";
 *
 * const channel = new Channel<number>();
 * channel.close();
 * await assert.rejects(channel.send(1), ChannelClosedError);
 * ```
 */
export class ChannelClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be done, "Cannot <action>: <state>".
   * @param options Standard error options; `cause` is kept.
   *
   * @example Creating the error
   * ```ts
   * import { ChannelClosedError } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * const error = new ChannelClosedError();
   * assert.equal(error.name, "ChannelClosedError");
   * assert.equal(error.message, "Cannot send: channel is closed");
   * ```
   */
  constructor(
    message = "Cannot send: channel is closed",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ChannelClosedError";
  }
}

function validateSendOptions(options: ChannelSendOptions): void {
  const timeoutMs = options.timeoutMs;
  if (timeoutMs === undefined) return;
  if (typeof timeoutMs !== "number") {
    throw new TypeError(
      `Cannot send: timeoutMs must be a number, received ${typeof timeoutMs}`,
    );
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(
      `Cannot send: timeoutMs must be a finite number >= 0, received ${timeoutMs}`,
    );
  }
}

/**
 * A slot held in a {@linkcode Channel}, from `reserve` or `tryReserve`:
 * either `send` a value into it, or dispose of it to give the slot back.
 * Whichever comes first uses the reservation up; later calls do nothing
 * (dispose) or throw (send).
 *
 * @example Giving a slot back on an error path
 * ```ts
 * import { Channel } from "@sluice/sluice/channel";
 * import assert from "node:assert/strict";
 *
 * using channel = new Channel<number>({ capacity: 1 });
 * try {
 *   using _slot = await channel.reserve();
 *   throw new Error("the write failed");
 * } catch {
 *   // the slot was given back by `using`
 * }
 * assert.equal(channel.trySend(1), true);
 * ```
 */
export class ChannelSlot<T> implements Disposable {
  #send: ((value: T) => void) | null;
  #release: (() => void) | null;

  /**
   * Made by the channel; not constructed directly.
   *
   * @param send Places a value into the held slot.
   * @param release Gives the held slot back.
   */
  constructor(send: (value: T) => void, release: () => void) {
    this.#send = send;
    this.#release = release;
  }

  /** `true` once the slot was sent into or given back. */
  get used(): boolean {
    return this.#send === null;
  }

  /**
   * Sends `value` into the held slot; never waits.
   *
   * @param value The value.
   * @throws {ChannelClosedError} If the channel closed after the slot was
   * reserved; the slot is given back and the value is not queued.
   * @throws {Error} If the reservation was already used.
   */
  send(value: T): void {
    const send = this.#send;
    if (send === null) {
      throw new Error("Cannot send into slot: the reservation was used");
    }
    this.#send = null;
    this.#release = null;
    send(value);
  }

  /** Gives the slot back unless it was used. */
  [Symbol.dispose](): void {
    const release = this.#release;
    if (release === null) return;
    this.#send = null;
    this.#release = null;
    release();
  }
}

/**
 * A bounded first-in, first-out channel for any number of senders and
 * receivers.
 *
 * Free capacity is a counting {@linkcode Semaphore} of slots: a value holds
 * one slot from the moment it is sent until it is received. When the
 * channel is full, `send` waits for a slot (`overflow: "block"`) or throws
 * {@linkcode QueueFullError} (`overflow: "reject"`). Receivers that find it
 * empty wait in arrival order. `close()` refuses new values, fails the
 * senders still waiting, and lets receivers drain what is held; then
 * receives fail with {@linkcode ChannelClosedError} and iteration ends.
 *
 * A producer that must do work between admission and hand-off (a durable
 * insert, say) can reserve a slot with `reserve` or `tryReserve`, then
 * either send the value into it, which never waits, or dispose of it.
 *
 * @typeParam T The type of the values carried.
 *
 * @example Producing and consuming with backpressure
 * ```ts
 * import { Channel } from "@sluice/sluice/channel";
 * import assert from "node:assert/strict";
 *
 * using channel = new Channel<number>({ capacity: 2 });
 * const producer = (async () => {
 *   for (let i = 0; i < 5; i++) await channel.send(i);
 *   channel.close();
 * })();
 * const received: number[] = [];
 * for await (const value of channel) received.push(value);
 * await producer;
 * assert.deepEqual(received, [0, 1, 2, 3, 4]);
 * assert.equal(channel.stats().highWaterMark, 2);
 * ```
 */
export class Channel<T> implements AsyncIterable<T>, Disposable {
  readonly #capacity: number;
  readonly #overflow: OverflowPolicy;
  // One permit per free slot. Taken by a sender before its value enters
  // `#items` (or a reservation), given back when a receiver takes the value.
  readonly #slots: Semaphore;
  readonly #items: RingBuffer<T>;
  // Receivers wait only while `#items` is empty; a send hands its value to
  // the oldest live receiver instead of buffering it.
  readonly #receivers: WaitQueue<T> = new WaitQueue<T>();
  // Slots granted by `reserve`/`tryReserve` and not yet used or returned.
  #reserved = 0;
  #closed = false;
  // Aborted by `close()`; joined into every blocked sender's wait so that
  // closing removes them from the slot semaphore's line.
  readonly #closeController: AbortController = new AbortController();

  #highWaterMark = 0;
  #sent = 0;
  #received = 0;
  #rejections = 0;
  #blockedSends = 0;
  #blockedTimeTotalMs = 0;
  #blockedTimeMaxMs = 0;

  /**
   * Creates an empty, open channel.
   *
   * @param options Capacity and overflow policy.
   * @throws {TypeError} If `capacity` is not a number or `overflow` is not a
   * string.
   * @throws {RangeError} If `capacity` is not an integer >= 1 or `overflow`
   * is neither `"block"` nor `"reject"`.
   *
   * @example Creating a rejecting channel
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<string>({ capacity: 64, overflow: "reject" });
   * assert.equal(channel.capacity, 64);
   * assert.equal(channel.overflow, "reject");
   * ```
   */
  constructor(options: ChannelOptions = {}) {
    const { capacity = 1024, overflow = "block" } = options;
    if (typeof capacity !== "number") {
      throw new TypeError(
        `Cannot create channel: capacity must be a number, received ${typeof capacity}`,
      );
    }
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create channel: capacity must be an integer >= 1, received ${capacity}`,
      );
    }
    if (typeof overflow !== "string") {
      throw new TypeError(
        `Cannot create channel: overflow must be "block" or "reject", received ${typeof overflow}`,
      );
    }
    if (overflow !== "block" && overflow !== "reject") {
      throw new RangeError(
        `Cannot create channel: overflow must be "block" or "reject", received "${overflow}"`,
      );
    }
    this.#capacity = capacity;
    this.#overflow = overflow;
    this.#slots = new Semaphore(capacity);
    this.#items = new RingBuffer<T>(Math.min(capacity, INITIAL_ITEM_SLOTS));
  }

  /**
   * The number of values held and not yet received.
   *
   * @returns The current depth.
   *
   * @example Reading the depth
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>();
   * await channel.send(1);
   * assert.equal(channel.depth, 1);
   * ```
   */
  get depth(): number {
    return this.#items.length;
  }

  /**
   * The maximum number of values held at once.
   *
   * @returns The configured capacity.
   *
   * @example Reading the capacity
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 8 });
   * assert.equal(channel.capacity, 8);
   * ```
   */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * What a send does when the channel is full.
   *
   * @returns The configured overflow policy.
   *
   * @example Reading the policy
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>();
   * assert.equal(channel.overflow, "block");
   * ```
   */
  get overflow(): OverflowPolicy {
    return this.#overflow;
  }

  /**
   * Whether `close()` has been called.
   *
   * @returns `true` once closed.
   *
   * @example Closing
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * const channel = new Channel<number>();
   * channel.close();
   * assert.equal(channel.closed, true);
   * ```
   */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The number of sends and slot requests waiting for a free slot.
   *
   * @returns The blocked sender count.
   *
   * @example Counting a blocked sender
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 1 });
   * await channel.send(1);
   * const blocked = channel.send(2);
   * assert.equal(channel.waitingSenders, 1);
   * assert.equal(await channel.receive(), 1);
   * await blocked;
   * assert.equal(channel.waitingSenders, 0);
   * ```
   */
  get waitingSenders(): number {
    return this.#slots.waiting;
  }

  /**
   * The number of receives waiting for a value.
   *
   * @returns The waiting receiver count.
   *
   * @example Counting a waiting receiver
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>();
   * const pending = channel.receive();
   * assert.equal(channel.waitingReceivers, 1);
   * await channel.send(7);
   * assert.equal(await pending, 7);
   * ```
   */
  get waitingReceivers(): number {
    return this.#receivers.size;
  }

  /**
   * Sends a value. With a free slot it is queued (or handed to a waiting
   * receiver) at once. On a full channel, `"block"` waits in line for a slot
   * and `"reject"` fails at once.
   *
   * @param value The value to send.
   * @param options A signal and a timeout for the wait.
   * @returns A promise that resolves once the value is in the channel.
   * @throws {ChannelClosedError} If the channel is closed, or closes while
   * the send waits; the value is then not queued.
   * @throws {QueueFullError} If the channel is full and `overflow` is
   * `"reject"`; the rejection is counted in `stats().rejections`.
   * @throws {DOMException} A `TimeoutError` if `timeoutMs` passes first.
   * @throws {unknown} `signal.reason` if the signal aborts first.
   * @throws {RangeError} If `timeoutMs` is negative or not finite.
   *
   * @example Sending with a timeout
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 1 });
   * await channel.send(1);
   * await assert.rejects(channel.send(2, { timeoutMs: 5 }), {
   *   name: "TimeoutError",
   * });
   * assert.equal(channel.depth, 1);
   * ```
   */
  send(value: T, options?: ChannelSendOptions): Promise<void> {
    try {
      this.#checkSend(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#slots.tryAcquire()) {
      this.#put(value);
      return RESOLVED;
    }
    if (this.#overflow === "reject") {
      this.#rejections++;
      return Promise.reject(new QueueFullError(value, this.#capacity));
    }
    return this.#sendSlow(value, options);
  }

  /**
   * Sends a value only if that needs no wait. A `false` return is not
   * counted as a rejection.
   *
   * @param value The value to send.
   * @returns `true` if the value entered the channel, `false` if it is full.
   * @throws {ChannelClosedError} If the channel is closed.
   *
   * @example Trying to send
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 1 });
   * assert.equal(channel.trySend(1), true);
   * assert.equal(channel.trySend(2), false);
   * ```
   */
  trySend(value: T): boolean {
    if (this.#closed) throw new ChannelClosedError();
    if (!this.#slots.tryAcquire()) return false;
    this.#put(value);
    return true;
  }

  /**
   * Reserves a slot for a value to be sent later through the returned
   * {@linkcode ChannelSlot}. Waits, rejects and counts exactly as `send`
   * does on a full channel. The reservation is `Disposable`: `using` it
   * gives the slot back on every exit path that did not send.
   *
   * @param options A signal and a timeout for the wait.
   * @returns The reservation, once the caller holds a slot.
   * @throws {ChannelClosedError} If the channel is closed, or closes while
   * the request waits.
   * @throws {QueueFullError} If the channel is full and `overflow` is
   * `"reject"`; its `value` is `undefined`.
   * @throws {DOMException} A `TimeoutError` if `timeoutMs` passes first.
   * @throws {unknown} `signal.reason` if the signal aborts first.
   * @throws {RangeError} If `timeoutMs` is negative or not finite.
   *
   * @example Reserving before a durable write
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<string>({ capacity: 4 });
   * {
   *   using slot = await channel.reserve({ timeoutMs: 1000 });
   *   const id = await Promise.resolve("task-1"); // e.g. an INSERT
   *   slot.send(id);
   * }
   * assert.equal(await channel.receive(), "task-1");
   * ```
   */
  reserve(options?: ChannelSendOptions): Promise<ChannelSlot<T>> {
    try {
      this.#checkSend(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#slots.tryAcquire()) {
      this.#reserved++;
      return Promise.resolve(
        new ChannelSlot(this.#sendReserved, this.#unreserve),
      );
    }
    if (this.#overflow === "reject") {
      this.#rejections++;
      return Promise.reject(new QueueFullError(undefined, this.#capacity));
    }
    return this.#reserveSlow(options);
  }

  /**
   * Reserves a slot only if that needs no wait. `undefined` (a full
   * channel) is not counted as a rejection.
   *
   * @returns The reservation, or `undefined` when the channel is full.
   * @throws {ChannelClosedError} If the channel is closed.
   *
   * @example Trying for a slot
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 1 });
   * const slot = channel.tryReserve();
   * assert.ok(slot !== undefined);
   * assert.equal(channel.tryReserve(), undefined);
   * slot[Symbol.dispose]();
   * assert.ok(channel.tryReserve() !== undefined);
   * ```
   */
  tryReserve(): ChannelSlot<T> | undefined {
    if (this.#closed) throw new ChannelClosedError();
    if (!this.#slots.tryAcquire()) return undefined;
    this.#reserved++;
    return new ChannelSlot(this.#sendReserved, this.#unreserve);
  }

  /** Slots reserved and neither sent into nor given back. */
  get reserved(): number {
    return this.#reserved;
  }

  // Both are called by a ChannelSlot exactly once, whichever comes first.
  #unreserve = (): void => {
    this.#reserved--;
    this.#slots.release();
  };

  #sendReserved = (value: T): void => {
    this.#reserved--;
    if (this.#closed) {
      this.#slots.release();
      throw new ChannelClosedError(
        "Cannot send reserved value: channel is closed",
      );
    }
    this.#put(value);
  };

  /**
   * Receives the oldest value, waiting in line if the channel is empty.
   * After `close()`, the values still held are returned in order before
   * receives fail.
   *
   * @param signal Cancels the wait; an aborted receive takes no value.
   * @returns A promise for the value.
   * @throws {ChannelClosedError} If the channel is closed and drained,
   * including for receives waiting when it closes.
   * @throws {unknown} `signal.reason` if the signal aborts first.
   *
   * @example Draining after close
   * ```ts
   * import { Channel, ChannelClosedError } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * const channel = new Channel<number>();
   * await channel.send(1);
   * channel.close();
   * assert.equal(await channel.receive(), 1);
   * await assert.rejects(channel.receive(), ChannelClosedError);
   * ```
   */
  receive(signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#items.length > 0) return Promise.resolve(this.#take());
    if (this.#closed) {
      return Promise.reject(
        new ChannelClosedError("Cannot receive: channel is closed and drained"),
      );
    }
    return this.#receivers.wait(signal);
  }

  /**
   * Receives the oldest value if one is held, without waiting.
   *
   * @returns The value, or `undefined` if the channel is empty.
   *
   * @example Polling once
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>();
   * assert.equal(channel.tryReceive(), undefined);
   * channel.trySend(3);
   * assert.equal(channel.tryReceive(), 3);
   * ```
   */
  tryReceive(): T | undefined {
    return this.#items.length > 0 ? this.#take() : undefined;
  }

  /**
   * Closes the channel. New sends and slot requests fail, senders waiting
   * for a slot fail with {@linkcode ChannelClosedError} and their values are
   * dropped, receivers drain the values held, and receivers waiting on an
   * empty channel fail. Calling it again does nothing.
   *
   * @example Ending an iteration
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * const channel = new Channel<number>();
   * await channel.send(1);
   * channel.close();
   * channel.close();
   * assert.deepEqual(await Array.fromAsync(channel), [1]);
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Rejects every blocked sender through the slot semaphore's abort path,
    // which leaves the permit counts exact.
    this.#closeController.abort(new ChannelClosedError());
    // Receivers only wait while nothing is held, so none of them could
    // still drain anything.
    while (this.#receivers.size > 0) {
      this.#receivers.take().reject(
        new ChannelClosedError("Cannot receive: channel is closed and drained"),
      );
    }
  }

  /**
   * Returns a snapshot of the channel's counters.
   *
   * @returns Depth, capacity, high-water mark, sent and received counts,
   * rejections and the time senders spent blocked.
   *
   * @example Counting rejections
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * using channel = new Channel<number>({ capacity: 1, overflow: "reject" });
   * await channel.send(1);
   * await channel.send(2).catch(() => {});
   * const stats = channel.stats();
   * assert.equal(stats.sent, 1);
   * assert.equal(stats.rejections, 1);
   * assert.equal(stats.highWaterMark, 1);
   * ```
   */
  stats(): ChannelStats {
    return {
      depth: this.#items.length,
      capacity: this.#capacity,
      highWaterMark: this.#highWaterMark,
      sent: this.#sent,
      received: this.#received,
      rejections: this.#rejections,
      blockedSends: this.#blockedSends,
      blockedTimeTotalMs: this.#blockedTimeTotalMs,
      blockedTimeMaxMs: this.#blockedTimeMaxMs,
    };
  }

  /**
   * Receives values in order until the channel is closed and drained.
   *
   * @returns An async iterator over the received values.
   * @throws {unknown} Anything other than the end-of-channel
   * {@linkcode ChannelClosedError}; none is expected.
   *
   * @example Iterating
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * const channel = new Channel<string>();
   * await channel.send("a");
   * await channel.send("b");
   * channel.close();
   * const seen: string[] = [];
   * for await (const value of channel) seen.push(value);
   * assert.deepEqual(seen, ["a", "b"]);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    while (true) {
      if (this.#items.length > 0) {
        yield this.#take();
        continue;
      }
      if (this.#closed) return;
      let value: T;
      try {
        value = await this.receive();
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      yield value;
    }
  }

  /**
   * Closes the channel, so `using` ends it with its scope.
   *
   * @example Closing at the end of a scope
   * ```ts
   * import { Channel } from "@sluice/sluice/channel";
   * import assert from "node:assert/strict";
   *
   * let outer: Channel<number>;
   * {
   *   using channel = new Channel<number>();
   *   outer = channel;
   * }
   * assert.equal(outer.closed, true);
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  #checkSend(options: ChannelSendOptions | undefined): void {
    if (this.#closed) throw new ChannelClosedError();
    if (options === undefined) return;
    validateSendOptions(options);
    const signal = options.signal;
    if (signal?.aborted) throw signal.reason;
  }

  async #sendSlow(value: T, options?: ChannelSendOptions): Promise<void> {
    await this.#waitForSlot(options);
    this.#put(value);
  }

  async #reserveSlow(options?: ChannelSendOptions): Promise<ChannelSlot<T>> {
    await this.#waitForSlot(options);
    this.#reserved++;
    return new ChannelSlot(this.#sendReserved, this.#unreserve);
  }

  // Waits for a slot on behalf of a send or slot request. On return the
  // caller holds exactly one slot; on throw it holds none.
  async #waitForSlot(options?: ChannelSendOptions): Promise<void> {
    this.#blockedSends++;
    const start = performance.now();
    const closeSignal = this.#closeController.signal;
    let signal = closeSignal;
    if (options?.signal !== undefined || options?.timeoutMs !== undefined) {
      const signals = [closeSignal];
      if (options.signal !== undefined) signals.push(options.signal);
      if (options.timeoutMs !== undefined) {
        signals.push(AbortSignal.timeout(options.timeoutMs));
      }
      signal = AbortSignal.any(signals);
    }
    try {
      await this.#slots.acquire(signal);
    } catch (error) {
      if (closeSignal.aborted && error === closeSignal.reason) {
        throw new ChannelClosedError(
          "Cannot send: channel closed while waiting for a slot",
        );
      }
      throw error;
    } finally {
      const elapsed = performance.now() - start;
      this.#blockedTimeTotalMs += elapsed;
      if (elapsed > this.#blockedTimeMaxMs) this.#blockedTimeMaxMs = elapsed;
    }
    // The slot may have been granted in the same turn as `close()`, before
    // this continuation ran: give it back rather than queue after close.
    if (this.#closed) {
      this.#slots.release();
      throw new ChannelClosedError(
        "Cannot send: channel closed while waiting for a slot",
      );
    }
  }

  // Places a value whose slot the caller holds.
  #put(value: T): void {
    this.#sent++;
    if (this.#receivers.size > 0) {
      // The value never occupies the buffer, so its slot is free again at
      // once and may go straight to a sender waiting behind it.
      const receiver = this.#receivers.take();
      this.#received++;
      this.#slots.release();
      receiver.resolve(value);
      return;
    }
    this.#items.push(value);
    if (this.#items.length > this.#highWaterMark) {
      this.#highWaterMark = this.#items.length;
    }
  }

  // Takes the head value, which must exist, and frees its slot.
  #take(): T {
    const value = this.#items.shift() as T;
    this.#received++;
    this.#slots.release();
    return value;
  }
}
