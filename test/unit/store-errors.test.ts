import assert from "node:assert/strict";
import { ApiKeyError, UNKNOWN_ERROR_MESSAGE } from "../../lib/errors";
import { translateStoreError } from "../../store/store-errors";

/** An error as a driver throws it: a message, and a `code` when the driver gives one. */
function driverError(message: string, code?: string, name?: string): Error {
  const error = new Error(message);
  if (code !== undefined) Object.assign(error, { code });
  if (name !== undefined) error.name = name;
  return error;
}

function refused(): AggregateError {
  // What Node throws when every address of a host refuses the connection.
  const each = [driverError("connect ECONNREFUSED ::1:5432", "ECONNREFUSED"), driverError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED")];
  return new AggregateError(each, "");
}

const OUTAGES: [string, unknown][] = [
  ["a refused connection", driverError("connect ECONNREFUSED 127.0.0.1:1", "ECONNREFUSED")],
  ["a refused connection to every address", refused()],
  ["a reset connection", driverError("read ECONNRESET", "ECONNRESET")],
  ["a timed-out connection", driverError("connect ETIMEDOUT", "ETIMEDOUT")],
  ["a broken pipe", driverError("write EPIPE", "EPIPE")],
  ["an unknown host", driverError("getaddrinfo ENOTFOUND db", "ENOTFOUND")],
  ["Knex's pool acquire timeout", driverError("Knex: Timeout acquiring a connection. The pool is probably full.", undefined, "KnexTimeoutError")],
  ["PostgreSQL: connection failure (class 08)", driverError("connection failure", "08006")],
  ["PostgreSQL: connection does not exist (class 08)", driverError("connection does not exist", "08003")],
  ["PostgreSQL: too many connections (class 53)", driverError("sorry, too many clients already", "53300")],
  ["PostgreSQL: disk full (class 53)", driverError("could not extend file", "53100")],
  ["PostgreSQL: admin shutdown", driverError("terminating connection due to administrator command", "57P01")],
  ["PostgreSQL: crash shutdown", driverError("terminating connection because of crash of another server process", "57P02")],
  ["PostgreSQL: starting up", driverError("the database system is starting up", "57P03")],
  ["PostgreSQL: serialization failure", driverError("could not serialize access", "40001")],
  ["PostgreSQL: deadlock", driverError("deadlock detected", "40P01")],
  ["pg: connection terminated", driverError("select 1 - Connection terminated unexpectedly")],
  ["pg: connection timeout", driverError("Connection terminated due to connection timeout")],
  ["pg: closed client", driverError("select 1 - Client was closed and is not queryable")],
  ["PGlite: closed database", driverError("select * from \"api_key\" - PGlite is closed")],
  ["MySQL: connection lost", driverError("Connection lost: The server closed the connection.", "PROTOCOL_CONNECTION_LOST")],
  ["MySQL: too many connections", driverError("Too many connections", "ER_CON_COUNT_ERROR")],
  ["MySQL: deadlock", driverError("Deadlock found when trying to get lock", "ER_LOCK_DEADLOCK")],
  ["MySQL: lock wait timeout", driverError("Lock wait timeout exceeded", "ER_LOCK_WAIT_TIMEOUT")],
  ["SQLite: busy", driverError("database is locked", "SQLITE_BUSY")],
  ["SQLite: busy, extended code", driverError("database is locked", "SQLITE_BUSY_SNAPSHOT")],
  ["SQLite: locked table", driverError("database table is locked", "SQLITE_LOCKED")],
  ["SQLite: cannot open", driverError("unable to open database file", "SQLITE_CANTOPEN")],
  ["SQLite: I/O error, extended code", driverError("disk I/O error", "SQLITE_IOERR_WRITE")],
];

const BAD_VALUES: [string, unknown, string][] = [
  ["an invalid regular expression", driverError("invalid regular expression", "2201B"), "Invalid filter: the $re pattern is not a valid PostgreSQL regular expression"],
  ["a malformed value", driverError("invalid input syntax for type uuid", "22P02"), "A value has the wrong format for its column"],
  ["a date out of range", driverError("date/time field value out of range", "22008"), "A date value is out of range"],
  ["invalid UTF-8", driverError("invalid byte sequence for encoding", "22021"), "A value contains bytes that are not valid UTF-8"],
  ["an oversized index entry", driverError("index row size exceeds maximum", "54000"), "A value is too long for its index"],
];

const UNEXPECTED: [string, unknown][] = [
  ["a missing table", driverError('select * from "api_key" - relation "api_key" does not exist', "42P01")],
  ["a missing column", driverError('column "owner" does not exist', "42703")],
  ["a unique violation", driverError("duplicate key value violates unique constraint", "23505")],
  ["an exception raised by a trigger", driverError("insert refused", "P0001")],
  ["a bug in our code", new TypeError("Cannot read properties of undefined (reading 'id')")],
  ["a coded error quoting outage words in its SQL", driverError("select * where title = 'Connection terminated' - syntax error", "42601")],
  ["outage words in the middle of a codeless message", driverError("select 'PGlite is closed' as x - something else broke")],
  ["an unknown code", driverError("what", "ER_SOMETHING_NEW")],
  ["a thrown string", "ECONNREFUSED"],
  ["null", null],
];

describe("store error classification", () => {
  for (const [label, error] of OUTAGES) {
    it(`${label} is unavailable (503)`, () => {
      const typed = translateStoreError(error);
      assert.deepEqual([typed.type, typed.status, typed.message], ["unavailable", 503, "The API key store is unavailable"]);
      assert.equal(typed.cause, error);
    });
  }

  for (const [label, error, message] of BAD_VALUES) {
    it(`${label} is invalid_data (400)`, () => {
      const typed = translateStoreError(error);
      assert.deepEqual([typed.type, typed.status, typed.message], ["invalid_data", 400, message]);
    });
  }

  for (const [label, error] of UNEXPECTED) {
    it(`${label} is unknown_error (500), its cause kept but not shown`, () => {
      const typed = translateStoreError(error);
      assert.deepEqual([typed.type, typed.status, typed.message], ["unknown_error", 500, UNKNOWN_ERROR_MESSAGE]);
      assert.equal(typed.cause, error);
    });
  }

  it("passes typed errors through as they are", () => {
    const typed = new ApiKeyError("not_found", "gone");
    assert.equal(translateStoreError(typed), typed);
  });
});
