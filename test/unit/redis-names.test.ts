import assert from "node:assert/strict";
import { hashedPart, prefixFitsCluster, redisNames } from "../../store/cache/redis-names";

const cacheKey = "ab".repeat(32);

describe("Redis key names", () => {
  it("keep the names of earlier releases on one Redis", () => {
    const names = redisNames("apikey:", false);
    assert.equal(names.entry(cacheKey), `apikey:key:${cacheKey}`);
    assert.equal(names.version(cacheKey), `apikey:ver:${cacheKey}`);
    assert.equal(names.channel, "apikey:invalidate");
    assert.equal(names.entries, "apikey:key:*");
  });

  it("make the cache key the hash tag on a Cluster, so that a token's entry and version share a slot", () => {
    const names = redisNames("apikey:", true);
    assert.equal(names.entry(cacheKey), `apikey:key:{${cacheKey}}`);
    assert.equal(hashedPart(names.entry(cacheKey)), cacheKey);
    assert.equal(hashedPart(names.version(cacheKey)), cacheKey);
    assert.equal(names.channel, "apikey:invalidate");
  });

  it("hash what Redis Cluster hashes: the first non-empty {...}, else the whole key", () => {
    assert.equal(hashedPart("plain"), "plain");
    assert.equal(hashedPart("a{tag}b{other}"), "tag");
    assert.equal(hashedPart("a{}b{tag}"), "a{}b{tag}");
    assert.equal(hashedPart("a{open"), "a{open");
    assert.equal(hashedPart("a{x{y}z"), "x{y");
  });

  it("accept a prefix with no braces or a whole hash tag, and refuse one that splits a token's keys", () => {
    for (const prefix of ["", "apikey:", "{apikey}:", "app:{tenant}:"]) assert.ok(prefixFitsCluster(prefix), prefix);
    for (const prefix of ["a{b", "a{}:", "{}"]) assert.ok(!prefixFitsCluster(prefix), prefix);
  });
});
