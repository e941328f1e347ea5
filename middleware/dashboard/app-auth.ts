// The dashboard with `signIn: false`: the app authenticates people its own way in front of the
// mount, and whoever it names (`req.auth_context.actor_id`, or `actor`) acts.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Router } from "express";
import { writeJson } from "../http/respond";
import type { AuthenticatedRequest } from "../request-context";
import { CSRF_HEADER, GUARD_MESSAGES, changes, crossOrigin } from "./guards";

/** What the page sends in the CSRF header here: the header's presence is the check. */
const APP_CSRF_TOKEN = "same-origin";

/** The 401 for a request the app has not authenticated: the page then says so, with no sign-in form. */
const notSignedIn = (res: ServerResponse) =>
  writeJson(res, 401, { type: "unauthorized", message: "You are not signed in to the app: sign in there, then reload this page", sign_in: false }, { noStore: true });

export function appAuthRoutes(router: Router, actor: ((req: IncomingMessage) => string | undefined) | undefined): void {
  const actorOf = actor ?? ((req: IncomingMessage) => (req as AuthenticatedRequest).auth_context?.actor_id);

  router.get("/session", (req, res) => {
    const who = actorOf(req);
    if (!who) {
      notSignedIn(res);
      return;
    }
    writeJson(res, 200, { sign_in: false, key: null, actor: who, csrf_token: APP_CSRF_TOKEN }, { noStore: true });
  });

  // The app's authentication is likely a cookie too: a custom header, which no other site can
  // send without a CORS preflight, and a same-origin Origin stand guard over every change.
  router.use("/api", (req, res, next) => {
    if (!actorOf(req)) {
      notSignedIn(res);
      return;
    }
    if (changes(req) && (crossOrigin(req) || req.headers[CSRF_HEADER] === undefined)) {
      writeJson(res, 403, { type: "forbidden", message: GUARD_MESSAGES.csrf }, { noStore: true });
      return;
    }
    next();
  });
}
