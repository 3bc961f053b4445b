/**
 * What every task store shares: the status list, empty counts, and the
 * checks on commit batches and list options, so that all stores refuse the
 * same bad input the same way.
 *
 * @module
 */
import type {
  CommitBatch,
  ListOptions,
  NewTask,
  QueueRetention,
  RetentionPolicy,
  SettleOutcome,
  StatusCounts,
  StatusTotals,
  TaskStatus,
} from "./store.ts";

/**
 * The error recorded on a task whose lease expired after its attempts were
 * used up (attempts are charged at start, so a claim that never started
 * does not count).
 */
export const LEASE_EXPIRED_MESSAGE =
  "Cannot finish task: lease expired after final attempt";

/** The error recorded on a task that was cancelled. */
export const CANCELLED_MESSAGE = "Cannot run task: cancelled";

/** The queue a task without one belongs to. */
export const DEFAULT_QUEUE = "default";

/** Every task status, in life-cycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "dead",
];

/** The status an applied settle moves its task to, by outcome. */
export const SETTLED_STATUS: Readonly<
  Record<SettleOutcome["kind"], TaskStatus>
> = { succeeded: "succeeded", retry: "failed", dead: "dead" };

/**
 * A fresh count of zero for every status.
 *
 * @returns The counts.
 */
export function emptyCounts(): StatusCounts {
  return { queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 };
}

/**
 * Totals with nothing counted yet.
 *
 * @returns Zero submitted, succeeded and dead.
 */
export function emptyTotals(): StatusTotals {
  return { submitted: 0, succeeded: 0, dead: 0 };
}

/**
 * Whether `value` is text a store keeps verbatim: a string without U+0000
 * or a lone surrogate. The checks of every task and settle of a batch
 * test this first and name the field (a string built per item) only for
 * one that fails.
 */
function isStoredText(value: unknown): boolean {
  return typeof value === "string" && !value.includes("\0") &&
    value.isWellFormed();
}

/**
 * Checks a string a store keeps verbatim (an id, type or idempotency key).
 * U+0000 and lone surrogates are refused: SQLite's C strings end at a NUL
 * and UTF-8 has no lone surrogates, so two different keys could be stored
 * as one, and PostgreSQL `text` refuses both.
 *
 * @param value The string.
 * @param field Where it is in the batch, e.g. `inserts[3].idempotencyKey`.
 * @param action What was being done, for the message.
 * @throws {TypeError} When it is not a string, or not storable verbatim.
 */
function checkStoredText(
  value: string,
  field: string,
  action = "commit",
): void {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot ${action}: ${field} must be a string, got ${typeof value}`,
    );
  }
  if (!isStoredText(value)) {
    throw new TypeError(
      `Cannot ${action}: ${field} contains U+0000 or a lone surrogate, which a store cannot keep verbatim, got ${
        JSON.stringify(value)
      }`,
    );
  }
}

/** The largest priority (and the smallest, negated): a 32-bit integer. */
export const MAX_PRIORITY = 2_147_483_647;

/**
 * Whether `value` is a valid priority: an integer from `-MAX_PRIORITY` to
 * `MAX_PRIORITY`.
 *
 * @param value The priority given.
 * @returns `true` when it is one.
 */
export function isPriority(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    Math.abs(value) <= MAX_PRIORITY;
}

/**
 * Checks a queue name: a non-empty string of at most 128 characters that a
 * store can keep verbatim.
 *
 * @param value The name.
 * @param field Where it is, for the message.
 * @param action What was being done, for the message ("Cannot <action>: …").
 * @throws {TypeError} When it is not a storable string.
 * @throws {RangeError} When it is empty or longer than 128 characters.
 */
export function checkQueueName(
  value: unknown,
  field: string,
  action = "use queue name",
): void {
  if (isQueueName(value)) return;
  checkStoredText(value as string, field, action);
  if ((value as string).length === 0 || (value as string).length > 128) {
    throw new RangeError(
      `Cannot ${action}: ${field} must have 1 to 128 characters, got ${
        JSON.stringify(value)
      }`,
    );
  }
}

/**
 * Whether `value` is a valid queue name, as {@linkcode checkQueueName}
 * checks it: for callers that name the field only when it is not.
 *
 * @param value The name.
 * @returns `true` when it is one.
 */
export function isQueueName(value: unknown): boolean {
  return typeof value === "string" && value.length > 0 &&
    value.length <= 128 && isStoredText(value);
}

/** Checks a fencing token: a safe integer. */
function checkVersion(value: number, field: string): void {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot commit: ${field} must be a number, got ${typeof value}`,
    );
  }
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(
      `Cannot commit: ${field} must be a safe integer, got ${value}`,
    );
  }
}

/**
 * Checks the id and version (and queue, when given) of a fenced operation
 * on a claimed task.
 */
function checkFenced(
  items: readonly { id: string; version: number; queue?: string }[],
  name: string,
): void {
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (!isStoredText(item.id)) checkStoredText(item.id, `${name}[${i}].id`);
    if (!Number.isSafeInteger(item.version)) {
      checkVersion(item.version, `${name}[${i}].version`);
    }
    if (item.queue !== undefined && !isQueueName(item.queue)) {
      checkQueueName(item.queue, `${name}[${i}].queue`, "commit");
    }
  }
}

/**
 * Tells the first settle (or release) of each claim in a batch from later
 * ones: of the writes of one `(id, version)` pair, only the first can
 * apply, in every store; later copies are refused without a look at the
 * task. Cheap while ids do not repeat.
 */
export class FirstOfPair {
  #firstVersion = new Map<string, number>();
  #pairs: Set<string> | null = null;

  /**
   * Takes one write's pair.
   *
   * @param id The task id.
   * @param version The claim's version.
   * @returns `"first"` for the first write of its id, `"again"` for the
   *   first of its pair after another pair of the id, `"copy"` for a
   *   later write of a pair already taken.
   */
  take(id: string, version: number): "first" | "again" | "copy" {
    const first = this.#firstVersion.get(id);
    if (first === undefined) {
      this.#firstVersion.set(id, version);
      return "first";
    }
    if (first === version) return "copy";
    const pair = `${version}:${id}`;
    this.#pairs ??= new Set();
    if (this.#pairs.has(pair)) return "copy";
    this.#pairs.add(pair);
    return "again";
  }
}

/**
 * Checks a batch before anything is applied, so that every store refuses
 * the same bad input the same way and a refused batch changes nothing.
 *
 * @param batch The batch.
 * @throws {RangeError} When a number is out of range.
 * @throws {TypeError} When a field has the wrong type, or an id, type or
 *   idempotency key holds U+0000 or a lone surrogate; the message names
 *   the field and its index.
 */
export function validateBatch(batch: CommitBatch): void {
  const { now, leaseMs, claimDue } = batch;
  if (!Number.isFinite(now)) {
    throw new RangeError(
      `Cannot commit: now must be a finite number, got ${now}`,
    );
  }
  if (!Number.isFinite(leaseMs) || leaseMs < 0) {
    throw new RangeError(
      `Cannot commit: leaseMs must be a non-negative finite number, got ${leaseMs}`,
    );
  }
  if (!Number.isSafeInteger(claimDue) || claimDue < 0) {
    throw new RangeError(
      `Cannot commit: claimDue must be a non-negative integer, got ${claimDue}`,
    );
  }
  if (batch.claimQueues !== undefined) {
    if (!Array.isArray(batch.claimQueues)) {
      throw new TypeError(
        `Cannot commit: claimQueues must be an array, got ${typeof batch
          .claimQueues}`,
      );
    }
    for (let i = 0; i < batch.claimQueues.length; i++) {
      const { queue, limit } = batch.claimQueues[i]!;
      checkQueueName(queue, `claimQueues[${i}].queue`);
      if (
        limit !== undefined && limit !== Infinity &&
        (!Number.isSafeInteger(limit) || limit < 0)
      ) {
        throw new RangeError(
          `Cannot commit: claimQueues[${i}].limit must be a non-negative integer, got ${limit}`,
        );
      }
    }
  }
  if (batch.claimTypes !== undefined) {
    if (!Array.isArray(batch.claimTypes)) {
      throw new TypeError(
        `Cannot commit: claimTypes must be an array, got ${typeof batch
          .claimTypes}`,
      );
    }
    batch.claimTypes.forEach((type, i) =>
      checkStoredText(type, `claimTypes[${i}]`)
    );
  }
  if (batch.recover !== undefined && typeof batch.recover !== "boolean") {
    throw new TypeError(
      `Cannot commit: recover must be a boolean, got ${typeof batch.recover}`,
    );
  }
  const inserts = batch.inserts;
  for (let i = 0; i < inserts.length; i++) {
    const task = inserts[i]!;
    if (!isStoredText(task.id)) checkStoredText(task.id, `inserts[${i}].id`);
    if (!isStoredText(task.type)) {
      checkStoredText(task.type, `inserts[${i}].type`);
    }
    if (task.queue !== undefined && !isQueueName(task.queue)) {
      checkQueueName(task.queue, `inserts[${i}].queue`);
    }
    if (task.priority !== undefined && !isPriority(task.priority)) {
      throw new RangeError(
        `Cannot store task ${task.id}: priority must be an integer from -${MAX_PRIORITY} to ${MAX_PRIORITY}, got ${task.priority}`,
      );
    }
    if (task.idempotencyKey !== null && !isStoredText(task.idempotencyKey)) {
      checkStoredText(task.idempotencyKey, `inserts[${i}].idempotencyKey`);
    }
    if (!Number.isSafeInteger(task.maxAttempts) || task.maxAttempts < 1) {
      throw new RangeError(
        `Cannot store task ${task.id}: maxAttempts must be an integer of at least 1, got ${task.maxAttempts}`,
      );
    }
    if (!Number.isFinite(task.runAt)) {
      throw new RangeError(
        `Cannot store task ${task.id}: runAt must be a finite number, got ${task.runAt}`,
      );
    }
    const until = task.dedupeUntil;
    if (until !== undefined && until !== null) {
      if (typeof until !== "number") {
        throw new TypeError(
          `Cannot store task ${task.id}: dedupeUntil must be a number or null, got ${typeof until}`,
        );
      }
      if (!Number.isFinite(until)) {
        throw new RangeError(
          `Cannot store task ${task.id}: dedupeUntil must be a finite number, got ${until}`,
        );
      }
    }
  }
  checkFenced(batch.renewals ?? [], "renewals");
  checkFenced(batch.starts ?? [], "starts");
  checkFenced(batch.progress ?? [], "progress");
  checkFenced(batch.checkpoints ?? [], "checkpoints");
  checkFenced(batch.settles, "settles");
  checkFenced(batch.releases ?? [], "releases");
  for (const settle of batch.settles) {
    if (
      settle.outcome.kind === "retry" &&
      !Number.isFinite(settle.outcome.runAt)
    ) {
      throw new RangeError(
        `Cannot settle task ${settle.id}: runAt must be a finite number, got ${settle.outcome.runAt}`,
      );
    }
    const startedAt = settle.startedAt;
    if (startedAt !== undefined) {
      if (typeof startedAt !== "number") {
        throw new TypeError(
          `Cannot settle task ${settle.id}: startedAt must be a number, got ${typeof startedAt}`,
        );
      }
      if (!Number.isFinite(startedAt)) {
        throw new RangeError(
          `Cannot settle task ${settle.id}: startedAt must be a finite number, got ${startedAt}`,
        );
      }
    }
  }
}

/** {@linkcode ListOptions} after checking, with defaults applied. */
export interface CheckedListOptions {
  /** Only this status, or every status. */
  status: TaskStatus | undefined;
  /** Only this queue, or every queue. */
  queue: string | undefined;
  /** At most this many, or no limit. */
  limit: number | undefined;
  /** Skip this many. */
  offset: number;
}

/**
 * Checks list options.
 *
 * @param options The caller's options.
 * @returns The options with defaults applied.
 * @throws {RangeError} When a field is out of range.
 */
export function validateList(options: ListOptions): CheckedListOptions {
  const { status, limit, offset = 0, queue } = options;
  if (queue !== undefined) checkQueueName(queue, "queue");
  if (status !== undefined && !TASK_STATUSES.includes(status)) {
    throw new RangeError(
      `Cannot list tasks: status must be one of ${
        TASK_STATUSES.join(", ")
      }, got ${JSON.stringify(status)}`,
    );
  }
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new RangeError(
      `Cannot list tasks: limit must be a non-negative integer, got ${limit}`,
    );
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(
      `Cannot list tasks: offset must be a non-negative integer, got ${offset}`,
    );
  }
  return { status, queue, limit, offset };
}

/** One status's retention after checking: what a prune may delete. */
export interface CheckedRule {
  /**
   * Tasks finished (`updatedAt`) strictly before this time may go, or
   * `null` for no age limit.
   */
  before: number | null;
  /** How many of the newest to keep at least, or `null` for no limit. */
  keep: number | null;
}

/** The checked rules of one queue (or the default), both statuses filled in. */
export interface CheckedRules {
  /** Rule for succeeded tasks. */
  succeeded: CheckedRule;
  /** Rule for dead tasks. */
  dead: CheckedRule;
}

/** A {@linkcode RetentionPolicy} after checking. */
export interface CheckedPolicy extends CheckedRules {
  /**
   * The rules of the queues the policy names, each status it left out
   * filled in from the policy's own rules.
   */
  queues: ReadonlyMap<string, CheckedRules>;
}

/**
 * The rules a checked policy applies to one queue's tasks.
 *
 * @param policy The checked policy.
 * @param queue The queue.
 * @returns The queue's own rules, or the policy's.
 */
export function rulesOf(policy: CheckedPolicy, queue: string): CheckedRules {
  return policy.queues.get(queue) ?? policy;
}

/** The statuses a retention policy may name: the finished ones. */
export const FINISHED_STATUSES: readonly ("succeeded" | "dead")[] = [
  "succeeded",
  "dead",
];

/**
 * Checks a retention policy and the time it is applied at, and turns each
 * rule into a cutoff time and a count to keep.
 *
 * @param policy The caller's policy.
 * @param now The time the policy is applied at (epoch ms).
 * @param action What is being done, for messages ("prune tasks").
 * @returns The checked policy.
 * @throws {TypeError} When the policy, a rule or a limit has the wrong type.
 * @throws {RangeError} When `now` is not finite, a limit is negative or
 *   not a number (a count must also be an integer), or the policy names a
 *   status that is not finished.
 */
export function checkRetention(
  policy: RetentionPolicy,
  now: number,
  action: string,
): CheckedPolicy {
  if (typeof now !== "number" || !Number.isFinite(now)) {
    throw new RangeError(
      `Cannot ${action}: now must be a finite number, got ${now}`,
    );
  }
  const top = checkRules(policy, "policy", now, action, ["queues"]);
  const queues = new Map<string, CheckedRules>();
  const named = policy.queues;
  if (named !== undefined) {
    if (typeof named !== "object" || named === null || Array.isArray(named)) {
      throw new TypeError(
        `Cannot ${action}: policy.queues must be an object, got ${
          named === null
            ? "null"
            : Array.isArray(named)
            ? "an array"
            : typeof named
        }`,
      );
    }
    for (const [queue, rules] of Object.entries(named)) {
      checkQueueName(queue, "a queue name in policy.queues", action);
      const field = `policy.queues[${JSON.stringify(queue)}]`;
      const own = checkRules(rules, field, now, action, []);
      queues.set(queue, {
        succeeded: rules.succeeded === undefined
          ? top.succeeded
          : own.succeeded,
        dead: rules.dead === undefined ? top.dead : own.dead,
      });
    }
  }
  return { ...top, queues };
}

/** Checks the succeeded and dead rules of a policy or one of its queues. */
function checkRules(
  rules: RetentionPolicy | QueueRetention,
  field: string,
  now: number,
  action: string,
  others: readonly string[],
): CheckedRules {
  if (typeof rules !== "object" || rules === null) {
    throw new TypeError(
      `Cannot ${action}: ${field} must be an object, got ${
        rules === null ? "null" : typeof rules
      }`,
    );
  }
  for (const name of Object.keys(rules)) {
    if (
      !(FINISHED_STATUSES as readonly string[]).includes(name) &&
      !others.includes(name)
    ) {
      throw new RangeError(
        `Cannot ${action}: ${field} can only name succeeded${
          others.length > 0 ? ", dead and " + others.join(", ") : " and dead"
        }, got ${JSON.stringify(name)}`,
      );
    }
  }
  const rule = (status: "succeeded" | "dead"): CheckedRule => {
    const given = rules[status];
    if (given === undefined) return { before: null, keep: null };
    if (typeof given !== "object" || given === null) {
      throw new TypeError(
        `Cannot ${action}: ${field}.${status} must be an object, got ${
          given === null ? "null" : typeof given
        }`,
      );
    }
    // A misspelt limit (`maxAge`) would otherwise keep everything silently.
    for (const name of Object.keys(given)) {
      if (name !== "maxAgeMs" && name !== "maxCount") {
        throw new TypeError(
          `Cannot ${action}: ${field}.${status} has no option ${
            JSON.stringify(name)
          }`,
        );
      }
    }
    const { maxAgeMs = Infinity, maxCount = Infinity } = given;
    for (
      const [name, value] of [["maxAgeMs", maxAgeMs], [
        "maxCount",
        maxCount,
      ]] as const
    ) {
      if (typeof value !== "number") {
        throw new TypeError(
          `Cannot ${action}: ${field}.${status}.${name} must be a number, got ${typeof value}`,
        );
      }
      if (Number.isNaN(value) || value < 0) {
        throw new RangeError(
          `Cannot ${action}: ${field}.${status}.${name} must be a non-negative number or Infinity, got ${value}`,
        );
      }
    }
    if (maxCount !== Infinity && !Number.isSafeInteger(maxCount)) {
      throw new RangeError(
        `Cannot ${action}: ${field}.${status}.maxCount must be an integer or Infinity, got ${maxCount}`,
      );
    }
    const before = now - maxAgeMs;
    return {
      // Older than any time a store can hold: no age limit.
      before: before < -Number.MAX_SAFE_INTEGER ? null : before,
      keep: maxCount === Infinity ? null : maxCount,
    };
  };
  return { succeeded: rule("succeeded"), dead: rule("dead") };
}

/**
 * Checks the most tasks one prune may delete.
 *
 * @param limit The limit.
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is not a non-negative safe integer.
 */
export function checkPruneLimit(limit: number): void {
  if (typeof limit !== "number") {
    throw new TypeError(
      `Cannot prune tasks: limit must be a number, got ${typeof limit}`,
    );
  }
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(
      `Cannot prune tasks: limit must be a non-negative integer, got ${limit}`,
    );
  }
}

/**
 * One batch of `TaskStore.insertAll` as a commit of inserts only,
 * checked like any commit.
 *
 * @throws {RangeError} When a task asks to be inserted claimed.
 */
export function insertOnlyBatch(
  tasks: readonly NewTask[],
  now: number,
): CommitBatch {
  for (const task of tasks) {
    if (task.claim === true) {
      throw new RangeError(
        `Cannot insert task ${task.id}: insertAll inserts tasks unclaimed, got claim: true`,
      );
    }
  }
  const batch: CommitBatch = {
    settles: [],
    inserts: tasks as NewTask[],
    claimDue: 0,
    leaseMs: 0,
    now,
  };
  validateBatch(batch);
  return batch;
}
