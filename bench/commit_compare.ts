/**
 * A store's group commit, tree against tree, in one process: each tree's
 * `SqliteTaskStore` on a file of its own (or, with `--store postgres`,
 * its `PostgresTaskStore` on a schema of its own in the database
 * `SLUICE_TEST_PG` names, dropped afterwards), their commits interleaved
 * (the order reversed every round), so that the machine's drift hits all
 * alike. Each commit has the shape the durable benchmark's commits have
 * (`bench/throughput.ts durable`): `--tasks` claimed inserts, the settles
 * of the previous commit's claims, and a claim that finds nothing. Prints
 * each tree's milliseconds in commits (after `--warmup` rounds) and its
 * ratio to the first tree's; `--runs` repeats the whole measurement on
 * fresh files.
 *
 * The store alone: what the queue, the workers and the disk add is in
 * `bench/compare_apart.sh`. Put the files on a RAM disk (`TMPDIR`) to
 * measure CPU cost rather than the disk's variance.
 *
 * ```sh
 * git worktree add --detach /tmp/before 7154a28
 * TMPDIR=/mnt/ram deno run --allow-read --allow-write --allow-env --allow-ffi \
 *   bench/commit_compare.ts . /tmp/before --runs 3
 * SLUICE_TEST_PG=postgres://postgres@127.0.0.1:5432/test deno run \
 *   --allow-read --allow-env --allow-net=127.0.0.1 \
 *   bench/commit_compare.ts . /tmp/before --store postgres --tasks 100 \
 *   --rounds 300 --warmup 30
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

interface Store {
  commit(batch: unknown): Promise<{
    inserted: { record: { id: string; version: number } }[];
  }>;
  close(): Promise<void>;
}

const { values, positionals: trees } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    tasks: { type: "string", default: "40" },
    rounds: { type: "string", default: "600" },
    warmup: { type: "string", default: "50" },
    runs: { type: "string", default: "1" },
    store: { type: "string", default: "sqlite" },
  },
});
const count = (name: keyof typeof values): number => {
  const n = Number(values[name]);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Cannot compare: --${name} must be an integer`);
  }
  return n;
};
const [tasks, rounds, warmup, runs] = [
  count("tasks"),
  count("rounds"),
  count("warmup"),
  count("runs"),
];
if (trees.length < 2) {
  throw new TypeError("Cannot compare: give two trees' paths or more");
}

const postgres = values.store === "postgres";
if (!postgres && values.store !== "sqlite") {
  throw new TypeError("Cannot compare: --store must be sqlite or postgres");
}
const url = Deno.env.get("SLUICE_TEST_PG");
if (postgres && url === undefined) {
  throw new TypeError("Cannot compare: --store postgres needs SLUICE_TEST_PG");
}

/** Opens one tree's store: on a file in `dir`, or on a schema named after it. */
type Open = (dir: string, name: string) => Promise<Store>;
const opens: Open[] = [];
for (const tree of trees) {
  const root = `file://${Deno.realPathSync(tree)}/`;
  if (postgres) {
    const module = await import(
      new URL("lib/store/postgres/postgres_store.ts", root).href
    ) as {
      PostgresTaskStore: {
        open(
          url: string,
          options: { schema: string; max: number },
        ): Promise<Store>;
        drop(url: string, options: { schema: string }): Promise<void>;
      };
    };
    const { PostgresTaskStore } = module;
    opens.push(async (_dir, schema) => {
      const store = await PostgresTaskStore.open(url!, { schema, max: 2 });
      return {
        commit: (batch) => store.commit(batch),
        close: async () => {
          await store.close();
          await PostgresTaskStore.drop(url!, { schema });
        },
      };
    });
  } else {
    const module = await import(
      new URL("lib/store/sqlite/sqlite_store.ts", root).href
    ) as { SqliteTaskStore: { open(path: string): Store } };
    opens.push((dir, name) =>
      Promise.resolve(module.SqliteTaskStore.open(`${dir}/${name}.db`))
    );
  }
}

for (let run = 0; run < runs; run++) {
  const dir = postgres
    ? ""
    : await Deno.makeTempDir({ prefix: "sluice-commit-" });
  const stores: Store[] = [];
  for (const [i, open] of opens.entries()) {
    stores.push(await open(dir, `commit_compare_${Deno.pid}_${run}_${i}`));
  }
  const spent = trees.map(() => 0);
  const held = trees.map((): { id: string; version: number }[] => []);
  let next = 0;
  for (let round = 0; round < rounds; round++) {
    const order = [...trees.keys()];
    if (round % 2 === 1) order.reverse();
    const now = 1_000_000 + round;
    for (const i of order) {
      const inserts = Array.from({ length: tasks }, () => ({
        id: `t${next++}`,
        type: "noop",
        idempotencyKey: null,
        payload: null,
        maxAttempts: 3,
        runAt: now,
        claim: true,
      }));
      const settles = held[i]!.map(({ id, version }) => ({
        id,
        version,
        outcome: { kind: "succeeded", result: null, outputKey: null },
        // A tree before named queues ignores it.
        queue: "default",
      }));
      const start = performance.now();
      const { inserted } = await stores[i]!.commit({
        settles,
        inserts,
        claimDue: 1,
        leaseMs: 30_000,
        now,
      });
      if (round >= warmup) spent[i]! += performance.now() - start;
      held[i] = inserted.map(({ record }) => record);
    }
  }
  for (const store of stores) await store.close();
  if (!postgres) await Deno.remove(dir, { recursive: true });
  const lines = trees.map((tree, i) =>
    `${tree}: ${spent[i]!.toFixed(1)} ms, ×${
      (spent[i]! / spent[0]!).toFixed(3)
    } of the first`
  );
  Deno.stdout.writeSync(
    new TextEncoder().encode(`run ${run + 1}: ${lines.join("; ")}\n`),
  );
}
