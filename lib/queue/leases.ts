/**
 * Leases: one heartbeat renews the lease of every entry that holds a claim,
 * wherever it waits (channel, worker slot, settle in flight), until it is
 * settled. Renewals ride in the group commit; every second heartbeat also
 * recovers the expired leases of crashed processes, in the same batch and
 * after the renewals, so this process never recovers its own tasks.
 *
 * @module
 */
import type { TaskEvents } from "./events.ts";
import type { TaskTable } from "./task_table.ts";
import type { TaskEntry } from "./types.ts";

/** What the heartbeat asks of the group commit. */
export interface HeartbeatSink {
  /** Makes the next batch renew (and with `recover`, recover) leases. */
  heartbeat(recover: boolean): void;
}

/** Options of {@linkcode Leases}. */
export interface LeasesOptions {
  /** Lease length, ms. */
  leaseMs: number;
  /** Milliseconds between heartbeats. */
  intervalMs: number;
}

/** Keeps this process's claims alive. Owned by the queue. */
export class Leases {
  #table: TaskTable;
  #events: TaskEvents;
  #options: LeasesOptions;
  #sink: HeartbeatSink | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #beats = 0;

  /**
   * @param table The task table.
   * @param events Where lost leases are reported.
   * @param options Lease length and heartbeat interval.
   */
  constructor(table: TaskTable, events: TaskEvents, options: LeasesOptions) {
    this.#table = table;
    this.#events = events;
    this.#options = options;
  }

  /** Starts the heartbeat. */
  start(sink: HeartbeatSink): void {
    this.#sink = sink;
    this.#timer = setInterval(() => this.beat(), this.#options.intervalMs);
  }

  /** One heartbeat: renew, and every second beat also recover. */
  beat(): void {
    this.#beats++;
    this.#sink?.heartbeat(this.#beats % 2 === 0);
  }

  /** Stops the heartbeat. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * The entries whose lease has less than half its length left at `now`:
   * asked for when a heartbeat batch is built, so the check and the
   * recovery in that batch see the same clock.
   */
  renewals(now: number): TaskEntry[] {
    const threshold = now + this.#options.leaseMs / 2;
    const due: TaskEntry[] = [];
    for (const entry of this.#table.holders()) {
      if (!entry.leaseLost && entry.leaseUntil < threshold) due.push(entry);
    }
    return due;
  }

  /** Records the new lease of each renewed entry; the others were lost. */
  renewed(entries: TaskEntry[], applied: boolean[], leaseUntil: number): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (applied[i]) entry.leaseUntil = Math.max(entry.leaseUntil, leaseUntil);
      else this.lost(entry);
    }
  }

  /**
   * Another process holds the task now. A task still waiting in the
   * channel is dropped here (the dispatcher skips it) and its handle waits
   * on the store; a running one finishes, and its settle will be refused.
   */
  lost(entry: TaskEntry): void {
    if (entry.leaseLost || this.#table.get(entry.id) !== entry) return;
    entry.leaseLost = true;
    this.#events.emit("lease_lost", {
      id: entry.id,
      type: entry.type,
      queue: entry.queue,
      idempotencyKey: entry.idempotencyKey,
      state: entry.state,
    });
    if (entry.state === "queued") this.#table.move(entry, "remote");
  }
}
