// The API key dashboard's page: Preact components written with htm's tagged templates, so the
// browser runs this file as it is, with no build step. Every call goes to the admin router
// mounted at `api/` beside this page; the session is an HttpOnly cookie the page never sees,
// and the CSRF token it sends with each change is kept in memory only.
import { Component, createRef, h, render } from "./vendor/preact.js";
import htm from "./vendor/htm.js";
import { AuditTrail, UsageChart, daysAgo, perDay, totalsByKey } from "./charts.js";

const html = htm.bind(h);
const PAGE_SIZE = 20;
/** Days the usage charts cover. */
const CHART_DAYS = 30;
const GRACE_PERIODS = [
  ["0", "None: the old key stops now"],
  ["3600", "1 hour"],
  ["86400", "24 hours"],
  ["604800", "7 days"],
];

// ---------------------------------------------------------------------------------------------
// Talking to the server

/**
 * A refused or failed call: the server's message, the HTTP status (0 when it was not reached),
 * and whether signing in here could help (not when the app authenticates people itself).
 */
class RequestError extends Error {
  constructor(message, status, signIn = true) {
    super(message);
    this.status = status;
    this.signIn = signIn;
  }
}

let csrfToken = "";
let onSessionEnded = () => {};

async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new RequestError("The server cannot be reached. Check the connection and try again.", 0);
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (response.ok) return data;
  const error = new RequestError(data.message || `The server answered ${response.status}.`, response.status, data.sign_in !== false);
  if (response.status === 401 && error.signIn && path.startsWith("api/")) onSessionEnded(error.message);
  throw error;
}

/** The list query for the filters: the admin router's bracket notation. */
function listQuery({ q, type, status, offset }) {
  const now = new Date().toISOString();
  const params = new URLSearchParams({ order: "-created_at", limit: String(PAGE_SIZE), offset: String(offset) });
  if (q.trim()) params.set("q", q.trim());
  if (type) params.set("type", type);
  if (status === "active") {
    params.set("$and[0][$or][0][revoked_at][$exists]", "false");
    params.set("$and[0][$or][1][revoked_at][$gt]", now);
    params.set("$and[1][$or][0][expires_at][$exists]", "false");
    params.set("$and[1][$or][1][expires_at][$gt]", now);
  } else if (status === "revoked") {
    params.set("revoked_at[$lte]", now);
  } else if (status === "expired") {
    params.set("expires_at[$lte]", now);
  } else if (status === "deleted") {
    params.set("with_deleted", "true");
    params.set("deleted_at[$exists]", "true");
  }
  return `api/?${params}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const isPast = (when) => when !== null && when !== undefined && new Date(when).getTime() <= Date.now();

function statusOf(key) {
  if (key.deleted_at) return { label: "Deleted", tone: "off" };
  if (isPast(key.revoked_at)) return { label: "Revoked", tone: "off" };
  if (isPast(key.expires_at)) return { label: "Expired", tone: "off" };
  if (key.revoked_at) return { label: "Revokes soon", tone: "warn" };
  return { label: "Active", tone: "on" };
}

const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

/** "3 hours ago", "in 2 days": how long from now, in its largest whole unit. */
function relative(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  for (const [unit, size] of UNITS) if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit);
  return RELATIVE.format(0, "minute");
}

/** An instant: a date (`style` "date"), a date and time ("full") or how long ago ("relative"); the exact time on hover. */
function When({ at, empty = "-", style = "full" }) {
  if (!at) return html`<span class="muted">${empty}</span>`;
  const date = new Date(at);
  const text = style === "date" ? DATE.format(date) : style === "relative" ? relative(date) : DATE_TIME.format(date);
  return html`<time datetime=${date.toISOString()} title=${DATE_TIME.format(date)}>${text}</time>`;
}

/** A datetime-local value (local time, no zone) as an instant; undefined when empty or unreadable. */
function fromLocalInput(value) {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The form's title, trimmed: said in place before a request, since the API refuses an empty one too. */
function titleOf(form) {
  const title = String(form.get("title")).trim();
  if (!title) throw new Error("Give the key a title, such as the app or person that will use it.");
  return title;
}

function words(list) {
  return list
    .split(/[\s,]+/)
    .map((word) => word.trim())
    .filter(Boolean);
}

/** The browser's time zone, which datetime inputs and the presets are in. */
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const EXPIRY_PRESETS = [
  ["7", "In 7 days"],
  ["30", "In 30 days"],
  ["90", "In 90 days"],
];
/** What a sales channel id can be: the reference's ids (`sc_01...`) and the like. */
const RESOURCE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The expiry the form chose: undefined to keep the key's, null for never, or an instant. */
function expiryOf(form) {
  const choice = String(form.get("expiry"));
  if (choice === "keep") return undefined;
  if (choice === "never") return null;
  if (choice === "at") {
    const at = fromLocalInput(form.get("expires_at"));
    if (!at) throw new Error("Expires at is not a date and time.");
    return at.toISOString();
  }
  return new Date(Date.now() + Number(choice) * 86_400_000).toISOString();
}

/** The rate-limit rows of the form, in order, as the API takes them. */
function rateLimitsOf(form) {
  const limits = [];
  for (const [field, value] of form.entries()) {
    const row = /^limit-name-(\d+)$/.exec(field);
    if (!row) continue;
    const name = String(value).trim();
    const limit = String(form.get(`limit-requests-${row[1]}`)).trim();
    const duration = String(form.get(`limit-seconds-${row[1]}`)).trim();
    if (!name && !limit && !duration) continue;
    if (!name || !/^\d+$/.test(limit) || !/^\d+$/.test(duration)) {
      throw new Error("Each rate limit needs a name, a number of requests and a window in seconds.");
    }
    limits.push({ name, limit: Number(limit), duration: Number(duration) });
  }
  return limits;
}

/** Every policy field the form holds, as the API takes them (empty ones as their defaults). */
function policyOf(form, type) {
  const policy = {};
  const expires = expiryOf(form);
  if (expires !== undefined) policy.expires_at = expires;
  if (type === "secret") policy.scopes = words(String(form.get("scopes")));
  policy.owner_id = String(form.get("owner_id")).trim() || null;
  const metadata = String(form.get("metadata")).trim();
  try {
    policy.metadata = metadata ? JSON.parse(metadata) : {};
  } catch {
    throw new Error('Metadata must be a JSON object, such as {"team": "web"}.');
  }
  if (typeof policy.metadata !== "object" || policy.metadata === null || Array.isArray(policy.metadata)) {
    throw new Error('Metadata must be a JSON object, such as {"team": "web"}.');
  }
  policy.rate_limits = rateLimitsOf(form);
  const remaining = String(form.get("remaining")).trim();
  policy.remaining = remaining ? Number(remaining) : null;
  const refill = String(form.get("refill_amount")).trim();
  policy.refill = refill ? { amount: Number(refill), interval: form.get("refill_interval") } : null;
  policy.allowed_ips = words(String(form.get("allowed_ips")));
  return policy;
}

/** The fields of `policy` that differ from the key's: what an edit sends. */
function changedFields(key, policy) {
  return Object.fromEntries(Object.entries(policy).filter(([field, value]) => JSON.stringify(value) !== JSON.stringify(key[field] ?? null)));
}

/** A datetime-local value for an instant, in the browser's time zone. */
function toLocalInput(at) {
  const date = new Date(at);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// Building blocks

function ErrorMessage({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}

/**
 * A modal dialog: the browser keeps focus inside it, and Escape closes it. When it goes, focus
 * returns to what opened it, or, when that is gone (a row that changed), to the page's main area.
 */
class Modal extends Component {
  ref = createRef();
  opener = null;
  componentDidMount() {
    this.opener = document.activeElement;
    this.ref.current.showModal();
  }
  componentWillUnmount() {
    const opener = this.opener;
    // After the page has re-rendered: a row's buttons are kept by their key when the row stays.
    setTimeout(() => {
      if (opener?.isConnected) opener.focus();
      else document.querySelector("main")?.focus();
    });
  }
  render({ title, onClose, children }) {
    return html`<dialog ref=${this.ref} aria-labelledby="dialog-title" onClose=${onClose}>
      <h2 id="dialog-title">${title}</h2>
      ${children}
    </dialog>`;
  }
}

/** A form in a modal: its submit runs `onSubmit`, and an error is shown in place. */
class FormDialog extends Component {
  state = { busy: false, error: "" };
  submit = async (event) => {
    event.preventDefault();
    this.setState({ busy: true, error: "" });
    try {
      await this.props.onSubmit(new FormData(event.currentTarget));
    } catch (error) {
      this.setState({ busy: false, error: error.message });
    }
  };
  render({ title, submitLabel, danger, onClose, children }, { busy, error }) {
    return html`<${Modal} title=${title} onClose=${onClose}>
      <form onSubmit=${this.submit} novalidate>
        ${children}
        <${ErrorMessage} error=${error} />
        <div class="actions">
          <button type="button" onClick=${onClose}>Cancel</button>
          <button type="submit" class=${danger ? "danger" : "primary"} disabled=${busy}>${submitLabel}</button>
        </div>
      </form>
    <//>`;
  }
}

/** A token in a read-only field with a Copy button; where copying is refused, the field is selected instead. */
class CopyableToken extends Component {
  state = { copied: "" };
  input = createRef();
  copy = async () => {
    try {
      await navigator.clipboard.writeText(this.props.token);
      this.setState({ copied: "Copied to the clipboard." });
    } catch {
      this.input.current.select();
      this.setState({ copied: "Select the token and copy it yourself: the browser did not allow copying." });
    }
  };
  render({ token, primary }, { copied }) {
    return html`<div class="token-row">
        <input ref=${this.input} readonly value=${token} aria-label="Token" class="token" />
        <button type="button" class=${primary ? "primary" : "small"} onClick=${this.copy}>Copy</button>
      </div>
      <p role="status" class="muted">${copied}</p>`;
  }
}

/**
 * A new token, with a Copy button, and a `note` when there is more to say. The page keeps it
 * above everything else, so that it stays up even when the session ends behind it. A secret
 * token is shown this once; a publishable one is public, and the key's details show it again.
 */
function TokenReveal({ title, token, note, onClose }) {
  const secret = token.startsWith("sk_");
  return html`<${Modal} title=${title} onClose=${onClose}>
    <p>${secret ? "Copy this token now: it is not shown again." : "A publishable token is public: the key's details show it at any time."}</p>
    ${note ? html`<p><strong>${note}</strong></p>` : null}
    <${CopyableToken} token=${token} primary />
    <div class="actions"><button type="button" onClick=${onClose}>Done</button></div>
  <//>`;
}

// ---------------------------------------------------------------------------------------------
// Dialogs for each action

/**
 * The policy fields of a key, for creating one (`key` absent) and for editing one in place:
 * expiry with presets, scopes (secret keys), owner, metadata, rate limits as rows, quota, refill
 * and allowed addresses, each filled with the key's current value.
 */
class PolicyFields extends Component {
  constructor(props) {
    super(props);
    const limits = props.apiKey?.rate_limits ?? [];
    this.state = { expiry: props.apiKey ? "keep" : "never", rows: limits.map((limit, index) => ({ id: index, ...limit })), next: limits.length };
  }
  addRow = () => this.setState(({ rows, next }) => ({ rows: [...rows, { id: next, name: "", limit: "", duration: "" }], next: next + 1 }));
  removeRow = (id) => this.setState(({ rows }) => ({ rows: rows.filter((row) => row.id !== id) }));
  render({ apiKey, type }, { expiry, rows }) {
    const key = apiKey ?? {};
    const current = key.expires_at ? `Keep: ${DATE_TIME.format(new Date(key.expires_at))}` : "Keep: never";
    return html`
      <label for="f-expiry">Expires</label>
      <select id="f-expiry" name="expiry" value=${expiry} aria-describedby="zone-hint" onChange=${(e) => this.setState({ expiry: e.currentTarget.value })}>
        ${apiKey ? html`<option value="keep">${current}</option>` : null}
        <option value="never">Never</option>
        ${EXPIRY_PRESETS.map(([days, label]) => html`<option value=${days}>${label}</option>`)}
        <option value="at">At a date and time</option>
      </select>
      ${expiry === "at" ? html`<label for="f-expires_at">Expires at</label><input id="f-expires_at" name="expires_at" type="datetime-local" defaultValue=${key.expires_at ? toLocalInput(key.expires_at) : ""} aria-describedby="zone-hint" />` : null}
      <p id="zone-hint" class="hint">Times are in your time zone, ${TIME_ZONE}.</p>
      ${type === "secret"
        ? html`<label for="f-scopes">Scopes</label><input id="f-scopes" name="scopes" defaultValue=${(key.scopes ?? []).join(", ")} placeholder="orders:read, products:*" aria-describedby="scopes-hint" autocomplete="off" />
            <p id="scopes-hint" class="hint">Comma-separated resource:action words; none means every scope.</p>`
        : null}
      <label for="f-owner_id">Owner ID</label><input id="f-owner_id" name="owner_id" defaultValue=${key.owner_id ?? ""} autocomplete="off" />
      <label for="f-metadata">Metadata</label><textarea id="f-metadata" name="metadata" rows="2" placeholder='{"team": "web"}' defaultValue=${Object.keys(key.metadata ?? {}).length ? JSON.stringify(key.metadata) : ""}></textarea>
      <fieldset class="limits">
        <legend>Rate limits</legend>
        ${rows.length === 0 ? html`<p class="hint">None: the key is not rate limited.</p>` : null}
        ${rows.map(
          (row, index) => html`<div class="limit-row" key=${row.id}>
            <div class="field"><label for=${`f-limit-name-${row.id}`}>Rate limit ${index + 1} name</label><input id=${`f-limit-name-${row.id}`} name=${`limit-name-${row.id}`} defaultValue=${row.name} autocomplete="off" /></div>
            <div class="field"><label for=${`f-limit-requests-${row.id}`}>Rate limit ${index + 1} requests</label><input id=${`f-limit-requests-${row.id}`} name=${`limit-requests-${row.id}`} type="number" min="1" step="1" defaultValue=${row.limit} /></div>
            <div class="field"><label for=${`f-limit-seconds-${row.id}`}>Rate limit ${index + 1} seconds</label><input id=${`f-limit-seconds-${row.id}`} name=${`limit-seconds-${row.id}`} type="number" min="1" step="1" defaultValue=${row.duration} /></div>
            <button type="button" class="small" aria-label=${`Remove rate limit ${index + 1}`} onClick=${() => this.removeRow(row.id)}>Remove</button>
          </div>`,
        )}
        <button type="button" class="small" onClick=${this.addRow}>Add rate limit</button>
      </fieldset>
      <label for="f-remaining">Remaining uses</label><input id="f-remaining" name="remaining" type="number" min="0" step="1" defaultValue=${key.remaining ?? ""} aria-describedby="remaining-hint" />
      <p id="remaining-hint" class="hint">Empty: unlimited.</p>
      <div class="pair">
        <div class="field"><label for="f-refill_amount">Refill amount</label><input id="f-refill_amount" name="refill_amount" type="number" min="1" step="1" defaultValue=${key.refill?.amount ?? ""} /></div>
        <div class="field"><label for="f-refill_interval">Refill interval</label><select id="f-refill_interval" name="refill_interval"><option value="day">Each day</option><option value="month" selected=${key.refill?.interval === "month"}>Each month</option></select></div>
      </div>
      <label for="f-allowed_ips">Allowed IPs</label><input id="f-allowed_ips" name="allowed_ips" defaultValue=${(key.allowed_ips ?? []).join(", ")} placeholder="203.0.113.7, 10.0.0.0/8" aria-describedby="ips-hint" autocomplete="off" />
      <p id="ips-hint" class="hint">Addresses or CIDR ranges, IPv4 or IPv6, separated by commas or spaces; none means any address.</p>`;
  }
}

class CreateDialog extends Component {
  state = { type: "secret" };
  submit = async (form) => {
    const type = String(form.get("type"));
    // Only what was filled in: empty fields keep the defaults.
    const policy = changedFields({ scopes: [], owner_id: null, metadata: {}, rate_limits: [], remaining: null, refill: null, allowed_ips: [], expires_at: null }, policyOf(form, type));
    const { api_key } = await call("POST", "api/", { title: titleOf(form), type, ...policy });
    this.props.onCreated(api_key);
  };
  render({ onClose }, { type }) {
    return html`<${FormDialog} title="Create key" submitLabel="Create" onClose=${onClose} onSubmit=${this.submit}>
      <label for="f-title">Title</label><input id="f-title" name="title" required maxlength="255" autocomplete="off" />
      <label for="f-type">Type</label><select id="f-type" name="type" value=${type} onChange=${(e) => this.setState({ type: e.currentTarget.value })}>
          <option value="secret">Secret (server-to-server, admin)</option>
          <option value="publishable">Publishable (storefront)</option>
        </select>
      <details>
        <summary>Policy (optional)</summary>
        <${PolicyFields} type=${type} />
      </details>
    <//>`;
  }
}

/** Changes a key in place: its title and every policy field; only what changed is sent. */
function EditDialog({ apiKey, onClose, onDone }) {
  const submit = async (form) => {
    const changes = changedFields(apiKey, { title: titleOf(form), ...policyOf(form, apiKey.type) });
    if (Object.keys(changes).length === 0) return onDone("Nothing changed.");
    await call("POST", `api/${apiKey.id}`, changes);
    onDone(`Saved ${changes.title ?? apiKey.title}.`);
  };
  return html`<${FormDialog} title=${`Edit ${apiKey.title}`} submitLabel="Save" onClose=${onClose} onSubmit=${submit}>
    <label for="f-title">Title</label><input id="f-title" name="title" defaultValue=${apiKey.title} required maxlength="255" autocomplete="off" />
    <${PolicyFields} apiKey=${apiKey} type=${apiKey.type} />
  <//>`;
}

class RevokeDialog extends Component {
  state = { when: "now" };
  submit = async (form) => {
    const body = {};
    if (this.state.when === "later") {
      const at = fromLocalInput(form.get("revoke_at"));
      if (!at || at.getTime() <= Date.now()) throw new Error("Choose a time in the future to revoke the key at.");
      body.revoke_in = Math.ceil((at.getTime() - Date.now()) / 1000);
    }
    await call("POST", `api/${this.props.apiKey.id}/revoke`, body);
    this.props.onDone(`Revoked ${this.props.apiKey.title}${body.revoke_in ? " at the chosen time" : ""}.`);
  };
  render({ apiKey, onClose }, { when }) {
    const pick = (event) => this.setState({ when: event.currentTarget.value });
    return html`<${FormDialog} title=${`Revoke ${apiKey.title}`} submitLabel="Revoke" danger onClose=${onClose} onSubmit=${this.submit}>
      <fieldset>
        <legend>When</legend>
        <label class="inline"><input type="radio" name="when" value="now" checked=${when === "now"} onChange=${pick} /> Now</label>
        <label class="inline"><input type="radio" name="when" value="later" checked=${when === "later"} onChange=${pick} /> At a chosen time</label>
      </fieldset>
      ${when === "later" ? html`<label for="f-revoke_at">Revoke at</label><input id="f-revoke_at" name="revoke_at" type="datetime-local" required />` : null}
      <p class="hint">Apps using ${apiKey.redacted} are refused from then on. This cannot be undone.</p>
    <//>`;
  }
}

function RollDialog({ apiKey, onClose, onRolled }) {
  const submit = async (form) => {
    const grace = Number(form.get("grace"));
    const { api_key } = await call("POST", `api/${apiKey.id}/roll`, grace > 0 ? { revoke_in: grace } : {});
    onRolled(api_key, grace);
  };
  return html`<${FormDialog} title=${`Roll ${apiKey.title}`} submitLabel="Roll" onClose=${onClose} onSubmit=${submit}>
    <p>A new key replaces ${apiKey.redacted}, with the same title, type, policy and sales channels.</p>
    <label for="f-grace">Grace period</label><select id="f-grace" name="grace">${GRACE_PERIODS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select>
  <//>`;
}

function DeleteDialog({ apiKey, onClose, onDone }) {
  const submit = async () => {
    await call("DELETE", `api/${apiKey.id}`);
    onDone(`Deleted ${apiKey.title}.`);
  };
  return html`<${FormDialog} title=${`Delete ${apiKey.title}`} submitLabel="Delete" danger onClose=${onClose} onSubmit=${submit}>
    <p>The revoked key ${apiKey.redacted} is deleted for good.</p>
  <//>`;
}

// ---------------------------------------------------------------------------------------------
// A key's details, with its sales channels for a publishable key

class KeyDetails extends Component {
  state = { key: null, usage: null, events: null, creator: "", error: "", channel: "", busy: false };
  componentDidMount() {
    this.load();
  }
  async load() {
    try {
      const from = encodeURIComponent(daysAgo(CHART_DAYS).toISOString());
      const [{ api_key }, { usage }, { events }] = await Promise.all([
        call("GET", `api/${this.props.id}`),
        call("GET", `api/${this.props.id}/usage?granularity=day&from=${from}`),
        call("GET", `api/audit-log?key_id=${encodeURIComponent(this.props.id)}&limit=1000`),
      ]);
      this.setState({ key: api_key, usage: perDay(usage, CHART_DAYS), events: events.reverse(), error: "" });
      this.setState({ creator: await this.creatorOf(api_key.created_by) });
    } catch (error) {
      this.setState({ error: error.message });
    }
  }
  /** A key made by another key names it by its title; anything else (a user id) is shown as it is. */
  async creatorOf(createdBy) {
    const known = this.props.names.get(createdBy);
    if (known || !createdBy.startsWith("apk_")) return known ?? createdBy;
    try {
      const { api_key } = await call("GET", `api/${encodeURIComponent(createdBy)}?fields=title,redacted&with_deleted=true`);
      return `${api_key.title} (${api_key.redacted})`;
    } catch {
      return createdBy;
    }
  }
  async change(body) {
    this.setState({ busy: true, error: "" });
    try {
      const { api_key } = await call("POST", `api/${this.props.id}/sales-channels`, body);
      this.setState({ key: { ...this.state.key, sales_channels: api_key.sales_channels }, channel: "", busy: false });
    } catch (error) {
      this.setState({ error: error.message, busy: false });
    }
  }
  /** Links every id typed, separated by commas or spaces; refuses the lot if one cannot be an id. */
  link = (event) => {
    event.preventDefault();
    const ids = words(this.state.channel);
    const bad = ids.find((id) => !RESOURCE_ID.test(id));
    if (ids.length === 0) this.setState({ error: "Enter a sales channel ID to link." });
    else if (bad) this.setState({ error: `"${bad}" cannot be a sales channel ID: use letters, digits, _ and -.` });
    else this.change({ add: ids });
  };
  render({ names }, { key, usage, events, creator, error, channel, busy }) {
    if (!key) return error ? html`<${ErrorMessage} error=${error} />` : html`<p class="muted">Loading...</p>`;
    const json = (value) => html`<code>${JSON.stringify(value)}</code>`;
    const rows = [
      ["ID", html`<code>${key.id}</code>`],
      ...(key.type === "publishable" ? [["Token", html`<${CopyableToken} token=${key.token} />`]] : []),
      ["Created by", creator && creator !== key.created_by ? html`${creator} <code>${key.created_by}</code>` : key.created_by],
      ["Created", html`<${When} at=${key.created_at} />`],
      ["Updated", html`<${When} at=${key.updated_at} />`],
      ["Last used", html`<${When} at=${key.last_used_at} empty="never" />`],
      ["Revoked", key.revoked_at ? html`<${When} at=${key.revoked_at} /> by ${key.revoked_by}` : html`<span class="muted">-</span>`],
      ["Expires", html`<${When} at=${key.expires_at} empty="never" />`],
      ["Scopes", key.type === "secret" ? (key.scopes.length ? key.scopes.join(", ") : "all") : "-"],
      ["Owner", key.owner_id ?? "-"],
      ["Metadata", Object.keys(key.metadata ?? {}).length ? json(key.metadata) : "-"],
      ["Rate limits", key.rate_limits.length ? key.rate_limits.map((r) => `${r.name}: ${r.limit} per ${r.duration} s`).join("; ") : "none"],
      ["Remaining uses", key.remaining ?? "unlimited"],
      ["Refill", key.refill ? `${key.refill.amount} each ${key.refill.interval}` : "-"],
      ["Allowed IPs", key.allowed_ips.length ? key.allowed_ips.join(", ") : "any"],
    ];
    return html`<div class="details">
      <dl>${rows.map(([term, value]) => html`<div><dt>${term}</dt><dd>${value}</dd></div>`)}</dl>
      ${key.type === "publishable"
        ? html`<section aria-label="Sales channels">
            <h3>Sales channels</h3>
            ${key.sales_channels.length === 0 ? html`<p class="muted">Not linked to any sales channel: storefront requests with this key are refused.</p>` : null}
            <ul class="channels">
              ${key.sales_channels.map(
                ({ id }) => html`<li><code>${id}</code>
                  <button type="button" class="small" disabled=${busy} aria-label=${`Unlink ${id}`} onClick=${() => this.change({ remove: [id] })}>Unlink</button></li>`,
              )}
            </ul>
            <form class="inline-form" onSubmit=${this.link}>
              <label for="f-sales-channel-id">Sales channel IDs</label><input id="f-sales-channel-id" value=${channel} placeholder="sc_web, sc_app" onInput=${(e) => this.setState({ channel: e.currentTarget.value })} autocomplete="off" />
              <button type="submit" disabled=${busy}>Link</button>
            </form>
          </section>`
        : null}
      <section aria-label="Usage">
        <${UsageChart} title=${`Verifications of ${key.title}, last ${CHART_DAYS} days`} days=${usage} />
      </section>
      <section aria-label="Audit trail">
        <h3>Audit trail</h3>
        <${AuditTrail} events=${events} names=${names} />
      </section>
      <${ErrorMessage} error=${error} />
    </div>`;
  }
}

// ---------------------------------------------------------------------------------------------
// The list of keys

/** The filters and page the address holds (`?q=&type=&status=&page=`), so that a reload or a shared link keeps them. */
function viewFromAddress() {
  const params = new URLSearchParams(location.search);
  const pick = (name, allowed) => (allowed.includes(params.get(name)) ? params.get(name) : "");
  const page = Number(params.get("page"));
  return {
    q: params.get("q") ?? "",
    type: pick("type", ["secret", "publishable"]),
    status: pick("status", ["active", "revoked", "expired", "deleted"]),
    offset: Number.isSafeInteger(page) && page > 1 ? (page - 1) * PAGE_SIZE : 0,
  };
}

function saveViewInAddress({ q, type, status, offset }) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (type) params.set("type", type);
  if (status) params.set("status", status);
  if (offset > 0) params.set("page", String(offset / PAGE_SIZE + 1));
  const search = params.size > 0 ? `?${params}` : "";
  if (search !== location.search) window.history.replaceState(null, "", `${location.pathname}${search}`);
}

class KeysPage extends Component {
  state = { ...viewFromAddress(), data: null, recent: new Map(), overview: null, error: "", loading: true, dialog: null, notice: "", open: null };
  searchTimer = 0;
  // Answers can arrive out of order (typing in the search box); only the latest is shown.
  latest = 0;
  componentDidMount() {
    this.load();
  }
  componentWillUnmount() {
    clearTimeout(this.searchTimer);
  }
  async load() {
    const ticket = ++this.latest;
    saveViewInAddress(this.state);
    this.setState({ loading: true });
    try {
      const lastDay = encodeURIComponent(new Date(Date.now() - 86_400_000).toISOString());
      const lastMonth = encodeURIComponent(daysAgo(CHART_DAYS).toISOString());
      const [data, { usage: recent }, { usage: daily }] = await Promise.all([
        call("GET", listQuery(this.state)),
        call("GET", `api/usage?from=${lastDay}`),
        call("GET", `api/usage?granularity=day&from=${lastMonth}`),
      ]);
      if (ticket === this.latest) this.setState({ data, recent: totalsByKey(recent), overview: perDay(daily, CHART_DAYS), error: "", loading: false });
    } catch (error) {
      if (ticket === this.latest) this.setState({ error: error.message, loading: false });
    }
  }
  filter(change, delay = 0) {
    this.setState({ ...change, offset: 0 });
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => this.load(), delay);
  }
  page(offset) {
    this.setState({ offset }, () => this.load());
  }
  close = () => this.setState({ dialog: null });
  done = (notice) => {
    this.setState({ dialog: null, notice });
    this.load();
  };
  created = (apiKey) => {
    this.props.onReveal({ title: `Key created: ${apiKey.title}`, token: apiKey.token });
    this.done(`Created ${apiKey.title}.`);
  };
  /**
   * Rolling the key this session was opened with, without a grace period, revokes it now: the
   * next request ends the session. The new token is shown all the same, above the sign-in form.
   */
  rolled(previous, successor, grace) {
    const endsSession = previous.id === this.props.signedInKeyId && grace === 0;
    const note = endsSession ? "This was the key you signed in with, so you are signed out now: copy the new token, then sign in with it." : "";
    this.props.onReveal({ title: `Key rolled: ${successor.title}`, token: successor.token, note });
    this.done(`Rolled ${successor.title}.`);
  }
  dialog() {
    const { dialog } = this.state;
    if (!dialog) return null;
    const common = { apiKey: dialog.key, onClose: this.close, onDone: this.done };
    switch (dialog.kind) {
      case "create":
        return html`<${CreateDialog} onClose=${this.close} onCreated=${this.created} />`;
      case "edit":
        return html`<${EditDialog} ...${common} />`;
      case "revoke":
        return html`<${RevokeDialog} ...${common} />`;
      case "roll":
        return html`<${RollDialog} ...${common} onRolled=${(successor, grace) => this.rolled(dialog.key, successor, grace)} />`;
      case "delete":
        return html`<${DeleteDialog} ...${common} />`;
      default:
        return null;
    }
  }
  row(key) {
    const status = statusOf(key);
    const revokedNow = isPast(key.revoked_at);
    const open = this.state.open === key.id;
    const act = (kind) => () => this.setState({ dialog: { kind, key }, notice: "" });
    const actions = key.deleted_at
      ? html`<button type="button" class="small" onClick=${() => this.restore(key)}>Restore</button>`
      : html`<button type="button" class="small" onClick=${act("edit")}>Edit</button>
          ${revokedNow
            ? html`<button type="button" class="small danger" onClick=${act("delete")}>Delete</button>`
            : html`<button type="button" class="small" onClick=${act("roll")}>Roll</button>
                <button type="button" class="small danger" onClick=${act("revoke")}>Revoke</button>`}`;
    return html`<tr key=${key.id}>
        <td data-label="Title"><strong>${key.title}</strong></td>
        <td data-label="Type">${key.type === "secret" ? "Secret" : "Publishable"}</td>
        <td data-label="Key"><code>${key.redacted}</code></td>
        <td data-label="Status"><span class=${`badge ${status.tone}`}>${status.label}</span></td>
        <td data-label="Created"><${When} at=${key.created_at} style="date" /></td>
        <td data-label="Last used"><${When} at=${key.last_used_at} empty="never" style="relative" /></td>
        <td data-label="Last 24 h">${this.recentUse(key.id)}</td>
        <td data-label="Expires"><${When} at=${key.expires_at} empty="never" style="date" /></td>
        <td data-label="Actions" class="row-actions">
          <button type="button" class="small" aria-expanded=${open} onClick=${() => this.setState({ open: open ? null : key.id })}>Details</button>
          ${actions}
        </td>
      </tr>
      ${open ? html`<tr class="details-row" key=${`${key.id}-details`}><td colspan="9"><${KeyDetails} key=${`${key.updated_at}|${key.revoked_at}|${key.title}`} id=${key.id} names=${this.names()} /></td></tr>` : null}`;
  }
  /** Brings a soft-deleted key back; it authenticates again. */
  async restore(key) {
    try {
      await call("POST", `api/${key.id}/restore`, {});
      this.done(`Restored ${key.title}.`);
    } catch (error) {
      this.setState({ error: error.message });
    }
  }
  /** Verifications of a key in the last 24 hours: valid, and refused when any were. */
  recentUse(id) {
    const use = this.state.recent.get(id);
    if (!use) return html`<span class="muted">none</span>`;
    return html`${use.valid} valid${use.refused > 0 ? html`, <span class="refused">${use.refused} refused</span>` : null}`;
  }
  /** The titles of the keys on this page, by id, to name the actors of audit events. */
  names() {
    return new Map((this.state.data?.api_keys ?? []).map((key) => [key.id, `${key.title} (${key.redacted})`]));
  }
  body() {
    const { data, error, loading, q, type, status } = this.state;
    if (!data) return error ? null : html`<p class="muted">Loading keys...</p>`;
    if (data.api_keys.length === 0) {
      const filtered = q || type || status;
      return html`<div class="empty">
        <p>${filtered ? "No keys match these filters." : "There are no keys yet."}</p>
        ${filtered ? null : html`<p class="muted">Create a secret key for a server or a publishable key for a storefront.</p>`}
      </div>`;
    }
    const first = data.offset + 1;
    const last = data.offset + data.api_keys.length;
    return html`<div class=${loading ? "busy" : ""}>
      <div class="table-frame">
      <table>
        <caption class="visually-hidden">API keys</caption>
        <thead><tr><th scope="col">Title</th><th scope="col">Type</th><th scope="col">Key</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Last 24 h</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead>
        <tbody>${data.api_keys.map((key) => this.row(key))}</tbody>
      </table>
      </div>
      <nav class="pager" aria-label="Pages">
        <span>${first}-${last} of ${data.count}</span>
        <button type="button" disabled=${data.offset === 0} onClick=${() => this.page(Math.max(0, data.offset - PAGE_SIZE))}>Previous</button>
        <button type="button" disabled=${last >= data.count} onClick=${() => this.page(data.offset + PAGE_SIZE)}>Next</button>
      </nav>
    </div>`;
  }
  render(_props, { q, type, status, error, notice }) {
    return html`<main tabindex="-1">
      <div class="toolbar">
        <div class="field"><label for="f-search">Search</label><input id="f-search" type="search" value=${q} placeholder="Title or key" onInput=${(e) => this.filter({ q: e.currentTarget.value }, 250)} /></div>
        <div class="field"><label for="f-type-filter">Type filter</label><select id="f-type-filter" value=${type} onChange=${(e) => this.filter({ type: e.currentTarget.value })}>
            <option value="">All types</option><option value="secret">Secret</option><option value="publishable">Publishable</option>
          </select></div>
        <div class="field"><label for="f-status-filter">Status filter</label><select id="f-status-filter" value=${status} onChange=${(e) => this.filter({ status: e.currentTarget.value })}>
            <option value="">Any status</option><option value="active">Active</option><option value="revoked">Revoked</option><option value="expired">Expired</option><option value="deleted">Deleted</option>
          </select></div>
        <button type="button" class="primary" onClick=${() => this.setState({ dialog: { kind: "create" }, notice: "" })}>Create key</button>
      </div>
      <p role="status" class="notice">${notice}</p>
      ${error ? html`<div class="error" role="alert">${error} <button type="button" class="small" onClick=${() => this.load()}>Try again</button></div>` : null}
      ${this.state.overview ? html`<section aria-label="Usage of all keys"><${UsageChart} title=${`All keys, last ${CHART_DAYS} days`} days=${this.state.overview} /></section>` : null}
      ${this.body()}
      ${this.dialog()}
    </main>`;
  }
}

// ---------------------------------------------------------------------------------------------
// Signing in, and the page around it

class SignIn extends Component {
  state = { busy: false, error: "" };
  submit = async (event) => {
    event.preventDefault();
    const secret = new FormData(event.currentTarget).get("secret_key");
    this.setState({ busy: true, error: "" });
    try {
      this.props.onSignedIn(await call("POST", "session", { secret_key: String(secret).trim() }));
    } catch (error) {
      this.setState({ busy: false, error: error.message });
    }
  };
  render({ notice }, { busy, error }) {
    return html`<main class="sign-in">
      <form onSubmit=${this.submit}>
        <h2>Sign in</h2>
        <p class="muted">Sign in with a secret API key. It is checked once and not kept in this browser.</p>
        ${notice && !error ? html`<p class="error" role="alert">${notice}</p>` : null}
        <label for="f-secret_key">Secret key</label><input id="f-secret_key" name="secret_key" type="password" autocomplete="off" spellcheck="false" required />
        <${ErrorMessage} error=${error} />
        <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      </form>
    </main>`;
  }
}

class App extends Component {
  state = { phase: "loading", who: null, keyId: null, canSignOut: false, notice: "", error: "", reveal: null };
  componentDidMount() {
    // Several calls can find the session ended at once: the first one says why, the rest add nothing.
    onSessionEnded = (message) => {
      if (csrfToken) this.signedOut(message);
    };
    this.check();
  }
  async check() {
    try {
      const session = await call("GET", "session");
      if (session.signed_in === false) this.setState({ phase: "sign-in", error: "" });
      else this.signedIn(session);
    } catch (error) {
      if (error.status === 401 && error.signIn) this.setState({ phase: "sign-in", error: "" });
      else this.setState({ error: error.message });
    }
  }
  signedIn = (session) => {
    csrfToken = session.csrf_token;
    const who = session.sign_in ? `${session.key.title} (${session.key.redacted})` : session.actor;
    this.setState({ phase: "ready", who, keyId: session.key?.id ?? null, canSignOut: session.sign_in, notice: "", error: "" });
  };
  signedOut(notice = "") {
    csrfToken = "";
    this.setState({ phase: "sign-in", who: null, keyId: null, notice });
  }
  signOut = async () => {
    try {
      await call("DELETE", "session");
      this.signedOut();
    } catch (error) {
      this.setState({ error: error.message });
    }
  };
  render(_props, { phase, who, keyId, canSignOut, notice, error, reveal }) {
    return html`<header>
        <h1>API keys</h1>
        ${phase === "ready"
          ? html`<div class="who"><span>Signed in as ${who}</span>
              ${canSignOut ? html`<button type="button" class="small" onClick=${this.signOut}>Sign out</button>` : null}</div>`
          : null}
      </header>
      ${error ? html`<div class="error page-error" role="alert">${error} <button type="button" class="small" onClick=${() => this.check()}>Try again</button></div>` : null}
      ${phase === "sign-in" ? html`<${SignIn} notice=${notice} onSignedIn=${this.signedIn} />` : null}
      ${phase === "ready" ? html`<${KeysPage} signedInKeyId=${keyId} onReveal=${(shown) => this.setState({ reveal: shown })} />` : null}
      ${reveal ? html`<${TokenReveal} ...${reveal} onClose=${() => this.setState({ reveal: null })} />` : null}`;
  }
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
