import assert from "node:assert/strict";
import { lastRecordEnd, parseLsn } from "../../store/replica-freshness";

const PAGE = 8192n;
const SEGMENT = 16n * 1024n * 1024n;

describe("WAL positions", () => {
  it("reads PostgreSQL's text form as a number, and nothing else", () => {
    assert.equal(parseLsn("0/0"), 0n);
    assert.equal(parseLsn("16/B374D848"), (0x16n << 32n) + 0xb374d848n);
    assert.equal(parseLsn("FFFFFFFF/FFFFFFFF"), (1n << 64n) - 1n);
    for (const bad of ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0"]) assert.throws(() => parseLsn(bad), /not a WAL position/);
  });

  it("takes an insert position past a page's header back to the page's start, where replay stops", () => {
    const page = 7n * PAGE;
    assert.equal(lastRecordEnd(page + 24n, PAGE, SEGMENT), page, "past a page header");
    assert.equal(lastRecordEnd(3n * SEGMENT + 40n, PAGE, SEGMENT), 3n * SEGMENT, "past the long header of a segment's first page");
    assert.equal(lastRecordEnd(page + 48n, PAGE, SEGMENT), page + 48n, "mid-page: the end of the last record");
  });
});
