// Compiles a validated filter condition (lib/filters.ts) into Knex query-builder calls, with
// the pattern operators of the store's dialect.
import type { Knex } from "knex";
import type { Condition } from "../lib/filters";
import type { Dialect } from "./dialect";

/** Escapes LIKE wildcards so that a `q` word such as `sk_` matches literally. */
function escapeLike(word: string): string {
  return word.replace(/[\\%_]/g, (char) => `\\${char}`);
}

type CompareOp = Extract<Condition, { kind: "compare" }>["op"];

/** -1 before the dialect's timestamp range, 1 after it, 0 inside it (or not a date). */
function outsideRange(value: unknown, dialect: Dialect): -1 | 0 | 1 {
  if (!(value instanceof Date) || !dialect.timestampRange) return 0;
  const [min, max] = dialect.timestampRange;
  return value.getTime() < min ? -1 : value.getTime() > max ? 1 : 0;
}

/**
 * A comparison with an instant the column cannot hold has the same answer for every stored
 * value: true for all or for none. `col = col` and `col <> col` give that answer, and NULL
 * where the column is NULL, as the comparison would (which matters under $not).
 */
function decideOutOfRange(builder: Knex.QueryBuilder, field: string, op: CompareOp, side: -1 | 1): void {
  const below = op === "<" || op === "<=";
  const above = op === ">" || op === ">=";
  const trueForAll = op === "<>" || (side === 1 && below) || (side === -1 && above);
  builder.whereRaw(trueForAll ? "?? = ??" : "?? <> ??", [field, field]);
}

export function applyCondition(builder: Knex.QueryBuilder, condition: Condition, dialect: Dialect): void {
  switch (condition.kind) {
    case "and":
      for (const item of condition.items) builder.where((inner) => applyCondition(inner, item, dialect));
      return;
    case "or":
      builder.where((group) => {
        for (const item of condition.items) group.orWhere((inner) => applyCondition(inner, item, dialect));
      });
      return;
    case "not":
      builder.whereNot((inner) => applyCondition(inner, condition.item, dialect));
      return;
    case "compare": {
      const side = outsideRange(condition.value, dialect);
      if (side !== 0) decideOutOfRange(builder, condition.field, condition.op, side);
      else builder.where(condition.field, condition.op, condition.value);
      return;
    }
    case "in": {
      // An instant the column cannot hold equals no stored value.
      const values = condition.values.filter((value) => outsideRange(value, dialect) === 0);
      if (!condition.negated) builder.whereIn(condition.field, values);
      else if (values.length > 0 || condition.values.length === 0) builder.whereNotIn(condition.field, values);
      else builder.whereRaw("?? = ??", [condition.field, condition.field]);
      return;
    }
    case "null":
      if (condition.negated) builder.whereNotNull(condition.field);
      else builder.whereNull(condition.field);
      return;
    case "match":
      if (condition.op === "like") dialect.whereLike(builder, condition.field, condition.pattern);
      else if (condition.op === "ilike") dialect.whereILike(builder, condition.field, condition.pattern);
      else dialect.whereRegex(builder, condition.field, condition.pattern);
      return;
    case "search":
      // Every word must match, in the title or in the redacted token, in any case.
      for (const word of condition.words) {
        const pattern = `%${escapeLike(word)}%`;
        builder.where((inner) => {
          dialect.whereILike(inner, "title", pattern);
          inner.orWhere((either) => dialect.whereILike(either, "redacted", pattern));
        });
      }
      return;
  }
}
