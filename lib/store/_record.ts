/**
 * The record a store returns for a task it has just inserted.
 *
 * @module
 */
import { DEFAULT_QUEUE } from "./_shared.ts";
import type { NewTask, TaskRecord } from "./store.ts";

/**
 * Builds the record of a freshly inserted task: `queued` at version 0, or,
 * for a claimed insert, `running` at version 1 with a lease. Either way no
 * attempt is charged yet and `startedAt` is `null`: attempts are charged,
 * and `startedAt` set, when a handler's start is written.
 *
 * @param task The task as inserted.
 * @param now The commit time (epoch ms).
 * @param leaseUntil The lease end of a claimed insert.
 * @param claim Whether it was inserted claimed (asked for, and its queue
 *   not paused).
 * @returns The record, as the store now holds it.
 */
export function newRecord(
  task: NewTask,
  now: number,
  leaseUntil: number,
  claim: boolean = task.claim === true,
): TaskRecord {
  return {
    id: task.id,
    type: task.type,
    queue: task.queue ?? DEFAULT_QUEUE,
    priority: task.priority ?? 0,
    idempotencyKey: task.idempotencyKey,
    payload: task.payload,
    status: claim ? "running" : "queued",
    attempts: 0,
    maxAttempts: task.maxAttempts,
    runAt: task.runAt,
    leaseUntil: claim ? leaseUntil : null,
    startedAt: null,
    createdAt: now,
    updatedAt: now,
    dedupeUntil: task.dedupeUntil ?? null,
    outputKey: null,
    result: null,
    lastError: null,
    errorClass: null,
    progress: null,
    checkpoint: null,
    version: claim ? 1 : 0,
  };
}
