/**
 * Task files, as `run --tasks` and `submit --file` read them: a JSON array
 * of `{ "image_key", "size" }` objects (type `image.variant`) or of
 * `{ "type", "payload"?, "idempotencyKey"?, "maxAttempts"? }` objects.
 *
 * @module
 */
import type { TaskInput } from "../queue/types.ts";

function toTaskInput(item: unknown, index: number): TaskInput {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new Error(`Cannot read task ${index}: expected an object`);
  }
  const record = item as Record<string, unknown>;
  if (typeof record["type"] === "string") {
    const task: TaskInput = { type: record["type"] };
    if ("payload" in record) task.payload = record["payload"];
    if (typeof record["idempotencyKey"] === "string") {
      task.idempotencyKey = record["idempotencyKey"];
    }
    if (typeof record["maxAttempts"] === "number") {
      task.maxAttempts = record["maxAttempts"];
    }
    return task;
  }
  if (
    typeof record["image_key"] === "string" &&
    typeof record["size"] === "string"
  ) {
    return { type: "image.variant", payload: record };
  }
  throw new Error(
    `Cannot read task ${index}: expected { type, payload } or { image_key, size }`,
  );
}

/**
 * Reads a task file.
 *
 * @param path The file.
 * @returns Its tasks, in order.
 * @throws {Error} When it cannot be read, is not a JSON array, or an item is
 *   neither kind of task (naming its index).
 */
export async function readTaskFile(path: string): Promise<TaskInput[]> {
  const text = await Deno.readTextFile(path);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `Cannot read task file ${path}: ${(error as Error).message}`,
    );
  }
  if (!Array.isArray(data)) {
    throw new Error(`Cannot read task file ${path}: expected a JSON array`);
  }
  return data.map(toTaskInput);
}
