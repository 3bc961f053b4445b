import assert from "node:assert/strict";
import {
  LOG_FIELDS,
  Logger,
  type LoggerOptions,
  type LogLevel,
  parseLogLevel,
} from "../lib/log.ts";

const EPOCH = Date.UTC(2025, 5, 1, 12, 0, 0, 0);
const ISO = "2025-06-01T12:00:00.000Z";

function collect(
  options: LoggerOptions = {},
): { lines: string[]; log: Logger } {
  const lines: string[] = [];
  const log = new Logger({
    clock: () => EPOCH,
    sink: (line) => lines.push(line),
    ...options,
  });
  return { lines, log };
}

const ORDER: LogLevel[] = ["debug", "info", "warn", "error"];

Deno.test("Logger.debug/info/warn/error() write only at or above the level when a level is set", () => {
  for (const [threshold, level] of [...ORDER, "silent" as const].entries()) {
    const { lines, log } = collect({ level });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    const expected = ["d", "i", "w", "e"].slice(threshold);
    assert.deepEqual(lines.map((l) => JSON.parse(l).event), expected, level);
  }
});

Deno.test("Logger.info() never calls the sink or reads fields when the level excludes it", () => {
  let calls = 0;
  let clockReads = 0;
  const log = new Logger({
    level: "warn",
    sink: () => calls++,
    clock: () => {
      clockReads++;
      return 0;
    },
  });
  const fields = {
    get expensive(): string {
      throw new Error("Cannot read field: excluded lines must not read it");
    },
  };
  log.debug("skipped", fields);
  log.info("skipped", fields);
  assert.equal(calls, 0);
  assert.equal(clockReads, 0);
  log.warn("kept");
  assert.equal(calls, 1);
});

Deno.test("Logger.enabled() reports whether a level is written when asked", () => {
  const log = new Logger({ level: "info", sink: () => {} });
  assert.equal(log.level, "info");
  assert.deepEqual(ORDER.map((l) => log.enabled(l)), [false, true, true, true]);
  assert.equal(log.enabled("silent"), false);
  const quiet = new Logger({ level: "silent", sink: () => {} });
  assert.deepEqual(ORDER.map((l) => quiet.enabled(l)), [
    false,
    false,
    false,
    false,
  ]);
});

Deno.test("Logger.info() writes time, level, event then fields when the format is json", () => {
  const { lines, log } = collect();
  log.info("task_succeeded", {
    [LOG_FIELDS.taskId]: "t1",
    [LOG_FIELDS.idempotencyKey]: "img:thumb",
    [LOG_FIELDS.attempt]: 2,
    [LOG_FIELDS.errorClass]: null,
    [LOG_FIELDS.durationMs]: 12.5,
  });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes("\n"));
  const record = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(record), [
    "time",
    "level",
    "event",
    "task_id",
    "idempotency_key",
    "attempt",
    "error_class",
    "duration_ms",
  ]);
  assert.deepEqual(record, {
    time: ISO,
    level: "info",
    event: "task_succeeded",
    task_id: "t1",
    idempotency_key: "img:thumb",
    attempt: 2,
    error_class: null,
    duration_ms: 12.5,
  });
});

Deno.test("LOG_FIELDS spells the standard field names in snake_case", () => {
  assert.deepEqual(LOG_FIELDS, {
    taskId: "task_id",
    idempotencyKey: "idempotency_key",
    attempt: "attempt",
    errorClass: "error_class",
    durationMs: "duration_ms",
  });
});

Deno.test("Logger.error() does not throw when fields hold BigInt, cycles or errors", () => {
  const { lines, log } = collect();
  const cycle: Record<string, unknown> = { name: "loop" };
  cycle.self = cycle;
  const shared = { n: 1 };
  log.error("task_failed", {
    big: 12345678901234567890n,
    cycle,
    pair: [shared, shared],
    error: new TypeError("bad input", { cause: "upstream" }),
  });
  const record = JSON.parse(lines[0]!);
  assert.equal(record.big, "12345678901234567890");
  assert.deepEqual(record.cycle, { name: "loop", self: "[Circular]" });
  assert.deepEqual(record.pair, [{ n: 1 }, { n: 1 }], "shared is not circular");
  assert.deepEqual(record.error, {
    name: "TypeError",
    message: "bad input",
    cause: "upstream",
  });
});

Deno.test("Logger.warn() still writes a line when a field's toJSON throws", () => {
  const { lines, log } = collect();
  log.warn("odd", {
    value: {
      toJSON(): never {
        throw new Error("no");
      },
    },
  });
  assert.equal(lines.length, 1);
  assert.match(JSON.parse(lines[0]!), /^\[Unserializable: Error: no\]$/);
});

Deno.test("Logger.child() binds fields to every line when created", () => {
  const { lines, log } = collect({ level: "debug" });
  const task = log.child({ task_id: "t7", attempt: 1 });
  const retry = task.child({ attempt: 2 });
  task.debug("started");
  retry.info("finished", { duration_ms: 3, task_id: "t7" });
  log.info("plain");
  const records = lines.map((l) => JSON.parse(l));
  assert.deepEqual(records[0], {
    time: ISO,
    level: "debug",
    event: "started",
    task_id: "t7",
    attempt: 1,
  });
  assert.deepEqual(records[1], {
    time: ISO,
    level: "info",
    event: "finished",
    task_id: "t7",
    attempt: 2,
    duration_ms: 3,
  });
  assert.deepEqual(Object.keys(records[2]), ["time", "level", "event"]);
  assert.equal(retry.level, "debug");
});

Deno.test("Logger.info() renames fields when they clash with time, level or event", () => {
  const { lines, log } = collect();
  log.info("real", { event: "fake", level: "x" });
  const record = JSON.parse(lines[0]!);
  assert.equal(record.event, "real");
  assert.equal(record.level, "info");
  assert.equal(record["field.event"], "fake");
  assert.equal(record["field.level"], "x");
});

Deno.test("Logger.warn() writes key=value text when the format is pretty", () => {
  const { lines, log } = collect({ format: "pretty" });
  log.child({ task_id: "t1" }).warn("task_retrying", {
    attempt: 2,
    reason: "upstream down",
    detail: { code: 503 },
  });
  assert.equal(
    lines[0],
    `${ISO} WARN  task_retrying task_id=t1 attempt=2 reason="upstream down" detail={"code":503}`,
  );
});

Deno.test("Logger.error() colours the level when colour is on and the format is pretty", () => {
  const { lines, log } = collect({ format: "pretty", color: true });
  log.error("boom");
  log.info("ok");
  assert.equal(lines[0], `${ISO} \x1b[31mERROR\x1b[0m boom`);
  assert.equal(lines[1], `${ISO} \x1b[32mINFO \x1b[0m ok`);
  const plain = collect({ format: "pretty" });
  plain.log.error("boom");
  assert.ok(!plain.lines[0]!.includes("\x1b["), "no colour for a custom sink");
});

Deno.test("parseLogLevel() returns the level when the name matches in any case", () => {
  assert.equal(parseLogLevel("debug"), "debug");
  assert.equal(parseLogLevel("INFO"), "info");
  assert.equal(parseLogLevel(" Warn\n"), "warn");
  assert.equal(parseLogLevel("silent"), "silent");
});

Deno.test("parseLogLevel() throws a RangeError listing the levels when the name is unknown", () => {
  assert.throws(
    () => parseLogLevel("verbose"),
    (error: unknown) =>
      error instanceof RangeError &&
      error.message ===
        'Cannot parse log level: "verbose" is not one of debug, info, warn, error, silent',
  );
  assert.throws(() => parseLogLevel("toString"), RangeError);
  assert.throws(() => parseLogLevel(""), RangeError);
});

Deno.test("new Logger() throws naming the option when options are invalid", () => {
  assert.throws(
    () => new Logger({ level: "loud" as LogLevel }),
    /^RangeError: .*"level".*got "loud"$/,
  );
  assert.throws(
    () => new Logger({ format: "xml" as "json" }),
    /^RangeError: .*"format".*got "xml"$/,
  );
  assert.throws(
    () => new Logger({ sink: "stderr" as unknown as () => void }),
    /^TypeError: .*"sink".*got string$/,
  );
  assert.throws(
    () => new Logger({ clock: 1 as unknown as () => number }),
    /^TypeError: .*"clock"/,
  );
  assert.throws(
    () => new Logger({ color: "yes" as unknown as boolean }),
    /^TypeError: .*"color"/,
  );
});
