import assert from "node:assert/strict";
import {
  type CommitListener,
  GroupCommitter,
} from "../../lib/queue/group_commit.ts";
import { entryOf, type TaskEntry } from "../../lib/queue/types.ts";
import { MemoryTaskStore } from "../../lib/store/memory_store.ts";
import type {
  InsertOutcome,
  NewTask,
  Settlement,
  TaskRecord,
} from "../../lib/store/store.ts";
import { FlakyStore } from "../fixtures/flaky_store.ts";
import { recordOf } from "./_support.ts";

const LEASE = 1_000;

/** A listener that records every call and lets a test wait for one. */
class Recorder implements CommitListener {
  calls: string[] = [];
  inserts: InsertOutcome[] = [];
  started_: boolean[] = [];
  settled_: boolean[] = [];
  renewedAt: number[] = [];
  recoveredCount = 0;
  claimedRecords: TaskRecord[] = [];
  insertErrors: unknown[] = [];
  toRenew: TaskEntry[] = [];
  #waiters: { name: string; resolve: () => void }[] = [];

  next(name: string): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ name, resolve }));
  }

  #call(name: string): void {
    this.calls.push(name);
    for (const w of this.#waiters.filter((w) => w.name === name)) w.resolve();
    this.#waiters = this.#waiters.filter((w) => w.name !== name);
  }

  inserted(_entries: TaskEntry[], outcomes: InsertOutcome[]): void {
    this.inserts.push(...outcomes);
    this.#call("inserted");
  }
  insertFailed(_entries: TaskEntry[], error: unknown): void {
    this.insertErrors.push(error);
    this.#call("insertFailed");
  }
  claimed(records: TaskRecord[]): void {
    this.claimedRecords.push(...records);
    this.#call("claimed");
  }
  renewals(now: number): TaskEntry[] {
    this.renewedAt.push(now);
    return this.toRenew;
  }
  renewed(entries: TaskEntry[], applied: boolean[], leaseUntil: number): void {
    entries.forEach((e, i) => {
      if (applied[i]) e.leaseUntil = leaseUntil;
    });
    this.#call("renewed");
  }
  started(_entries: TaskEntry[], applied: boolean[]): void {
    this.started_.push(...applied);
    this.#call("started");
  }
  settled(_e: TaskEntry[], _s: Settlement[], applied: boolean[]): void {
    this.settled_.push(...applied);
    this.#call("settled");
  }
  released(): void {
    this.#call("released");
  }
  progressed(): void {
    this.#call("progressed");
  }
  checkpointed(): void {
    this.#call("checkpointed");
  }
  recovered(count: number): void {
    this.recoveredCount += count;
    this.#call("recovered");
  }
  abandoned(): void {
    this.#call("abandoned");
  }
  retrying(): void {
    this.#call("retrying");
  }
}

function newTask(id: string, claim = true): NewTask {
  return {
    id,
    type: "t",
    idempotencyKey: null,
    payload: null,
    maxAttempts: 3,
    runAt: 0,
    claim,
  };
}

function entryFor(record: TaskRecord): TaskEntry {
  return entryOf(record, "queued", true, 0);
}

/** Inserts a task claimed, as a local submission is, and returns its entry. */
async function insertClaimed(
  committer: GroupCommitter,
  recorder: Recorder,
  id: string,
): Promise<TaskEntry> {
  const task = newTask(id);
  const entry = entryFor(recordOf(task));
  const inserted = recorder.next("inserted");
  committer.insert(entry, task);
  await inserted;
  entry.version = recorder.inserts.at(-1)!.record.version;
  return entry;
}

Deno.test("GroupCommitter commits everything asked for in one turn as one transaction", async () => {
  await using store = new MemoryTaskStore();
  const recorder = new Recorder();
  const committer = new GroupCommitter(store, recorder, {
    leaseMs: LEASE,
    now: () => 5,
  });
  const done = recorder.next("inserted");
  for (let i = 0; i < 100; i++) {
    const task = newTask(`t${i}`);
    committer.insert(entryFor({ ...recordOf(task) }), task);
  }
  committer.claim(3);
  await done;
  assert.equal(committer.commits, 1);
  assert.equal(recorder.inserts.length, 100);
  // Every task was inserted claimed, so the claim found nothing due.
  assert.deepEqual(recorder.calls, ["inserted", "claimed"]);
  assert.deepEqual(recorder.claimedRecords, []);
  await committer.flushed();
});

Deno.test("GroupCommitter.takeStart() lets a settle charge the attempt when the result comes before the start is sent", async () => {
  await using store = new MemoryTaskStore();
  const recorder = new Recorder();
  const committer = new GroupCommitter(store, recorder, {
    leaseMs: LEASE,
    now: () => 5,
  });
  const entry = await insertClaimed(committer, recorder, "a");
  committer.start(entry);
  assert.equal(committer.takeStart(entry), true, "not yet sent");
  assert.equal(committer.takeStart(entry), false);
  const settled = recorder.next("settled");
  committer.settle(entry, {
    id: "a",
    version: entry.version,
    outcome: { kind: "succeeded", result: 1, outputKey: null },
    charge: true,
  });
  await settled;
  const record = await store.get("a");
  assert.equal(record?.status, "succeeded");
  assert.equal(record?.attempts, 1, "one write charged the attempt");
  assert.equal(
    committer.commits,
    2,
    "the insert and the settle, no start write",
  );
  await committer.flushed();
});

Deno.test("GroupCommitter.start() writes the charge in the next batch when nothing takes it back", async () => {
  await using store = new MemoryTaskStore();
  const recorder = new Recorder();
  const committer = new GroupCommitter(store, recorder, {
    leaseMs: LEASE,
    now: () => 5,
  });
  const entry = await insertClaimed(committer, recorder, "a");
  const started = recorder.next("started");
  committer.start(entry);
  await started;
  assert.deepEqual(recorder.started_, [true]);
  assert.equal((await store.get("a"))?.attempts, 1);
  assert.equal(committer.takeStart(entry), false, "already written");
  await committer.flushed();
});

Deno.test("GroupCommitter.heartbeat() renews before it recovers, so a process never recovers its own tasks", async () => {
  await using store = new MemoryTaskStore();
  const recorder = new Recorder();
  let now = 0;
  const committer = new GroupCommitter(store, recorder, {
    leaseMs: LEASE,
    now: () => now,
  });
  const entry = await insertClaimed(committer, recorder, "mine");
  await insertClaimed(committer, recorder, "theirs");
  // Both leases (ending at 1000) have long expired by now; only "mine" is
  // held here.
  now = 50_000;
  recorder.toRenew = [entry];
  const recovered = recorder.next("recovered");
  committer.heartbeat(true);
  await recovered;
  assert.deepEqual(recorder.renewedAt, [50_000]);
  assert.equal(recorder.recoveredCount, 1);
  assert.equal(entry.leaseUntil, 50_000 + LEASE);
  assert.equal((await store.get("mine"))?.status, "running");
  assert.equal((await store.get("theirs"))?.status, "queued");
  await committer.flushed();
});

Deno.test("GroupCommitter refuses inserts and retries settles when a commit fails", async () => {
  await using inner = new MemoryTaskStore();
  const store = new FlakyStore(inner);
  const recorder = new Recorder();
  const committer = new GroupCommitter(store, recorder, {
    leaseMs: LEASE,
    now: () => 5,
  });
  const entry = await insertClaimed(committer, recorder, "a");
  store.down = true;
  const retrying = recorder.next("retrying");
  const refused = recorder.next("insertFailed");
  committer.settle(entry, {
    id: "a",
    version: entry.version,
    outcome: { kind: "succeeded", result: 2, outputKey: null },
    charge: true,
  });
  const late = newTask("b");
  committer.insert(entryFor(recordOf(late)), late);
  await Promise.all([retrying, refused]);
  assert.match(String(recorder.insertErrors[0]), /connection refused/);
  store.down = false;
  const settled = recorder.next("settled");
  await settled;
  assert.deepEqual(recorder.settled_, [true]);
  assert.equal((await inner.get("a"))?.status, "succeeded");
  assert.equal(
    await inner.get("b"),
    undefined,
    "the refused insert is not stored",
  );
  await committer.flushed();
});
