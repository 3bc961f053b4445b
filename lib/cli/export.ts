/**
 * `cli.ts export`: every task of a database, every field, as JSON or CSV.
 *
 * @module
 */
import {
  type Command,
  defineCommand,
  helpText,
  UsageError,
} from "./command.ts";
import { READ_KEYS, withStore } from "./open.ts";
import { csvHeader, csvRow, out } from "./output.ts";
import { TASK_COLUMNS, TASK_FIELDS, taskJson } from "./task_fields.ts";

const USAGE = helpText({
  usage: ["cli.ts export --db PATH|URL --format json|csv"],
  about: `
Writes every task to stdout, oldest first, with every field the store keeps:
${
    Object.values(TASK_FIELDS).join(", ").replace(/(.{1,72})(, |$)/g, "$1$2\n")
      .trim()
  }.
Times are ISO 8601.

JSON is an array of objects, with stored text exactly as stored and
payload and result as JSON values. CSV has a header; payload and result
are JSON text in their columns. A reader that stops early (| head) ends
the export quietly, with exit code 0.`,
  options: [
    ["--format FORMAT", "json or csv (required)"],
    ["--json", "Short for --format json"],
  ],
  config: READ_KEYS,
});

/** Tasks read per query. */
const PAGE = 1000;

/** `cli.ts export`. */
export const exportTasks: Command = defineCommand({
  usage: USAGE,
  config: READ_KEYS,
  formats: ["json", "csv"],
}, async (parsed) => {
  const format = parsed.format;
  if (format === undefined) {
    throw new UsageError("export needs --format json or csv");
  }
  return await withStore(parsed.config, "read", async (store) => {
    out(format === "csv" ? csvHeader(TASK_COLUMNS) : "[");
    let first = true;
    for (let offset = 0;; offset += PAGE) {
      const tasks = await store.list({ limit: PAGE, offset });
      let text = "";
      for (const task of tasks) {
        if (format === "csv") {
          text += csvRow(TASK_COLUMNS, task);
        } else {
          text += (first ? "\n" : ",\n") + JSON.stringify(taskJson(task));
          first = false;
        }
      }
      out(text);
      if (tasks.length < PAGE) break;
    }
    if (format === "json") out(first ? "]\n" : "\n]\n");
    return 0;
  });
});
