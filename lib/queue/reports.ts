/**
 * Progress and checkpoints: what a running handler reports through
 * `ctx.progress` and `ctx.checkpoint`, on its way from the pool to the
 * group commit, and back as `progress` events and checkpoint answers.
 *
 * Both are written to the task's row fenced by the claim's version, like
 * a renewal, so a process whose claim was taken over cannot overwrite the
 * new owner's state. Progress is coalesced (the last value per task per
 * batch); each checkpoint is written, in order, and answered only once its
 * batch has committed.
 *
 * @module
 */
import type { CheckpointDone } from "./group_commit.ts";
import type { TaskEvents } from "./events.ts";
import type { TaskEntry } from "./types.ts";

/** What reports ask of the group commit. */
export interface ReportCommits {
  /** Records `entry`'s progress in the next batch. */
  progress(entry: TaskEntry, value: unknown): void;
  /** Records `entry`'s checkpoint in the next batch; `done` once committed. */
  checkpoint(entry: TaskEntry, value: unknown, done: CheckpointDone): void;
}

/** Routes handlers' progress and checkpoints. Owned by the queue. */
export class Reports {
  #commits: ReportCommits;
  #events: TaskEvents;

  /**
   * @param commits The group commit.
   * @param events Where committed progress is announced.
   */
  constructor(commits: ReportCommits, events: TaskEvents) {
    this.#commits = commits;
    this.#events = events;
  }

  /** A handler reported progress (checked JSON text). */
  progress(entry: TaskEntry, json: string): void {
    if (!holds(entry)) return;
    this.#commits.progress(entry, JSON.parse(json));
  }

  /** A handler asked to checkpoint (checked JSON text). */
  checkpoint(entry: TaskEntry, json: string, done: CheckpointDone): void {
    if (!holds(entry)) {
      done(takenOver(entry));
      return;
    }
    this.#commits.checkpoint(entry, JSON.parse(json), done);
  }

  /** Progress committed: announced for the writes that applied. */
  progressed(
    entries: TaskEntry[],
    values: unknown[],
    applied: boolean[],
  ): void {
    if (!this.#events.wants("progress")) return;
    for (let i = 0; i < entries.length; i++) {
      if (!applied[i]) continue;
      const entry = entries[i]!;
      this.#events.emit("progress", {
        id: entry.id,
        type: entry.type,
        queue: entry.queue,
        idempotencyKey: entry.idempotencyKey,
        attempt: entry.attempt,
        progress: values[i],
      });
    }
  }

  /** Checkpoints committed, refused as stale, or given up: answers each. */
  checkpointed(
    entries: TaskEntry[],
    done: CheckpointDone[],
    applied: boolean[] | { error: unknown },
  ): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (Array.isArray(applied)) {
        done[i]!(applied[i] ? null : takenOver(entry));
      } else {
        done[i]!(
          `Cannot checkpoint task ${entry.id}: the store could not be written (${
            String(applied.error)
          })`,
        );
      }
    }
  }
}

/** Whether this process still holds the claim a handler runs under. */
function holds(entry: TaskEntry): boolean {
  return !entry.leaseLost &&
    (entry.state === "dispatched" || entry.state === "running");
}

function takenOver(entry: TaskEntry): string {
  return `Cannot checkpoint task ${entry.id}: its claim is no longer held (another process took the task over, or the attempt ended)`;
}
