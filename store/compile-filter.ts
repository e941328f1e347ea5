// Compiles a validated filter condition (lib/filters.ts) into Knex query-builder calls.
import type { Knex } from "knex";
import type { Condition } from "../lib/filters";

/** Escapes LIKE wildcards so that a `q` word such as `sk_` matches literally. */
function escapeLike(word: string): string {
  return word.replace(/[\\%_]/g, (char) => `\\${char}`);
}

const MATCH_OPERATOR = { like: "like", ilike: "ilike", regex: "~" } as const;

export function applyCondition(builder: Knex.QueryBuilder, condition: Condition): void {
  switch (condition.kind) {
    case "and":
      for (const item of condition.items) builder.where((inner) => applyCondition(inner, item));
      return;
    case "or":
      builder.where((group) => {
        for (const item of condition.items) group.orWhere((inner) => applyCondition(inner, item));
      });
      return;
    case "not":
      builder.whereNot((inner) => applyCondition(inner, condition.item));
      return;
    case "compare":
      builder.where(condition.field, condition.op, condition.value);
      return;
    case "in":
      if (condition.negated) builder.whereNotIn(condition.field, condition.values);
      else builder.whereIn(condition.field, condition.values);
      return;
    case "null":
      if (condition.negated) builder.whereNotNull(condition.field);
      else builder.whereNull(condition.field);
      return;
    case "match":
      builder.where(condition.field, MATCH_OPERATOR[condition.op], condition.pattern);
      return;
    case "search":
      // Every word must match, in the title or in the redacted token.
      for (const word of condition.words) {
        const pattern = `%${escapeLike(word)}%`;
        builder.where((inner) => inner.where("title", "ilike", pattern).orWhere("redacted", "ilike", pattern));
      }
      return;
  }
}
