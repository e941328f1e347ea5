// The two clocks, named for what they time, and passed down from the composition root: nothing
// below it reads the time on its own.

export interface Clocks {
  /**
   * Policy time: expiry, revocation, quota refills, dashboard sessions, ids. The `now` option of
   * `initialize()`, so an app (or a test) may set it.
   */
  policy: () => Date;
  /**
   * Counter time, in epoch milliseconds: rate-limit windows and leases, which must agree with the
   * TTLs Redis counts them by. Always real time, whatever the policy clock says.
   */
  counter: () => number;
}
