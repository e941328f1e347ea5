// Makes text safe to print on a terminal. Titles and other stored text come from whoever could
// create a key (an admin route, an app); raw, a control character or escape sequence in them would
// be run by the terminal of the person listing keys (clear the screen, set the window title, hide
// or reorder text), so everything the CLI prints passes through here.

/**
 * What a terminal acts on, or what changes how the text around it reads: control characters (C0,
 * DEL and C1, where U+009B alone starts a sequence in some terminals), format characters (bidi
 * overrides and isolates, zero-width marks), line and paragraph separators, and lone surrogates.
 */
const UNSAFE_TEXT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * The same characters as they can appear in JSON.stringify's output: it already escapes C0
 * controls and lone surrogates inside strings, and its only raw newlines are its own layout.
 */
const UNSAFE_JSON = /[\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}]/gu;

const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, "0");
}

function escapeCharacter(character: string): string {
  const short = SHORT_ESCAPES[character];
  if (short) return short;
  const code = character.codePointAt(0)!;
  if (code < 0x100) return `\\x${hex(code, 2)}`;
  return code < 0x10000 ? `\\u${hex(code, 4)}` : `\\u{${hex(code, 1)}}`;
}

/** The text with every unsafe character written as an escape (`\x1b`, `\u202e`, `\n`); the rest is left as it is. */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_TEXT, escapeCharacter);
}

/** Escapes each line of a multi-line text of our own (help, usage errors, stack traces), keeping its line breaks. */
export function terminalLines(text: string): string {
  return text.split("\n").map(terminalText).join("\n");
}

/**
 * A message whose literal parts are ours and whose interpolated values are data:
 * safe`Created key "${title}"` escapes the title but keeps the template's own line breaks.
 */
export function safe(literals: TemplateStringsArray, ...values: unknown[]): string {
  return literals.reduce((text, literal, index) => text + terminalText(String(values[index - 1])) + literal);
}

/**
 * Pretty JSON with the unsafe characters JSON.stringify leaves raw written as `\uXXXX` escapes,
 * which every JSON reader turns back into the same text: the data round-trips, the terminal is safe.
 */
export function terminalJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_JSON, (character) =>
    Array.from({ length: character.length }, (_, index) => `\\u${hex(character.charCodeAt(index), 4)}`).join(""),
  );
}
