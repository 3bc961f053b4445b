import assert from "node:assert/strict";
import { csvField, terminalText } from "../../lib/cli/output.ts";

Deno.test("terminalText() removes control characters and shows line breaks as escapes", () => {
  assert.equal(
    terminalText("a\x1b[31mred\x1b[0m\nb\rc\td\x07\x00\x7f\x9b"),
    "a[31mred[0m\\nb\\rc\\td",
  );
  assert.equal(terminalText("left\u202eright\u2066x\u2069"), "leftrightx");
  assert.equal(terminalText("plain ünïcode ✓"), "plain ünïcode ✓");
});

Deno.test("csvField() quotes only what needs quoting", () => {
  assert.equal(csvField(null), "");
  assert.equal(csvField(undefined), "");
  assert.equal(csvField(3), "3");
  assert.equal(csvField("a,b"), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField("two\nlines"), '"two\nlines"');
});
