import assert from "node:assert/strict";
import { safe, terminalJson, terminalLines, terminalText } from "../../cli/escape";

describe("terminal escaping for the CLI", () => {
  it("writes controls, escape sequences, format characters and separators as escapes, and leaves other text alone", () => {
    const cases: [string, string][] = [
      ["plain title, caf\u00e9 \u65e5\u672c \u{1f511}", "plain title, caf\u00e9 \u65e5\u672c \u{1f511}"],
      ["\x1b]0;title\x07", "\\x1b]0;title\\x07"],
      ["\x1b[2J", "\\x1b[2J"],
      ["\x9b31m", "\\x9b31m"],
      ["a\u202eb\u2066c\u200fd", "a\\u202eb\\u2066c\\u200fd"],
      ["\u2028\u2029\u200b\ufeff", "\\u2028\\u2029\\u200b\\ufeff"],
      ["tab\tnew\nret\r\x00\x7f", "tab\\tnew\\nret\\r\\x00\\x7f"],
      ["tag \u{e0041}", "tag \\u{e0041}"],
      ["lone \ud800", "lone \\ud800"],
    ];
    for (const [input, expected] of cases) assert.equal(terminalText(input), expected, JSON.stringify(input));
  });

  it("escapes interpolated values but keeps a template's own line breaks", () => {
    assert.equal(safe`a ${"x\ny"}\nb ${5}`, "a x\\ny\nb 5");
    assert.equal(terminalLines("one\x1b[2J\ntwo"), "one\\x1b[2J\ntwo");
  });

  it("leaves no unsafe character raw in JSON, and the JSON reads back as the same data", () => {
    const value = { title: "A\x1b[2J\x9b\u202e\u2028\u2029\x7f\u{e0041}\ud800", nested: ["\x85"] };
    const json = terminalJson(value);
    assert.doesNotMatch(json, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]|\p{Cf}/u);
    assert.deepEqual(JSON.parse(json), value);
  });
});
