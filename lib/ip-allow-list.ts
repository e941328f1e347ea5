// IP allow-lists: the client addresses a key accepts. Entries are addresses or CIDR ranges, IPv4
// or IPv6, kept in one canonical form; an IPv4-mapped IPv6 address (::ffff:1.2.3.4) is its IPv4
// address, in a list as from a client. Parsing and matching go through ipaddr.js, the library
// Express's `trust proxy` uses, rather than by hand.
import ipaddr from "ipaddr.js";

/** The most entries one key's list holds. */
export const MAX_ALLOWED_IPS = 100;

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** A list ready to match: each entry's network and prefix length. */
export type AllowList = readonly (readonly [Address, number])[];

/**
 * An address written in a standard form: four decimal parts for IPv4 (not `127.1` or `0x7f.0.0.1`,
 * which ipaddr.js would also read), and IPv6 without a zone. A mapped IPv6 address is its IPv4 one.
 */
function parseAddress(text: string): Address | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(":") || text.includes("%") || !ipaddr.IPv6.isValid(text)) return undefined;
  const address = ipaddr.IPv6.parse(text);
  return address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
}

/** An entry in its canonical form (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`), or undefined when it is not one. */
export function canonicalEntry(entry: string): string | undefined {
  const parts = entry.trim().split("/");
  if (parts.length > 2) return undefined;
  const address = parseAddress(parts[0]!);
  if (!address) return undefined;
  const full = address.kind() === "ipv4" ? 32 : 128;
  if (parts[1] === undefined) return address.toString();
  if (!/^\d{1,3}$/.test(parts[1])) return undefined;
  // A mapped range (::ffff:10.0.0.0/104) is the IPv4 range it maps.
  const bits = Number(parts[1]) - (address.kind() === "ipv4" && parts[0]!.includes(":") ? 96 : 0);
  if (bits < 0 || bits > full) return undefined;
  return bits === full ? address.toString() : `${address.toString()}/${bits}`;
}

/** A stored list (canonical entries) made ready to match. */
export function compileAllowList(entries: readonly string[]): AllowList {
  return entries.flatMap((entry) => {
    const [text, bits] = entry.split("/");
    const address = parseAddress(text!);
    if (!address) return [];
    return [[address, bits === undefined ? (address.kind() === "ipv4" ? 32 : 128) : Number(bits)] as const];
  });
}

/** Whether every range of `next` lies inside a range of `current` (neither empty): `next` accepts no address `current` refuses. */
export function within(current: readonly string[], next: readonly string[]): boolean {
  const outer = compileAllowList(current);
  return compileAllowList(next).every(([address, bits]) =>
    outer.some(([network, outerBits]) => network.kind() === address.kind() && bits >= outerBits && (address as ipaddr.IPv4).match(network as ipaddr.IPv4, outerBits)),
  );
}

/** Whether a client address (as a socket or `req.ip` gives it) is in the list; no address is in none. */
export function allows(list: AllowList, client: string | undefined): boolean {
  if (client === undefined || client.length > 64) return false;
  let address: Address;
  try {
    // process() reads an IPv4-mapped IPv6 address as its IPv4 address.
    address = ipaddr.process(client);
  } catch {
    return false;
  }
  // Same kinds only; the cast picks one of match()'s two signatures, which are alike for both kinds.
  return list.some(([network, bits]) => network.kind() === address.kind() && (address as ipaddr.IPv4).match(network as ipaddr.IPv4, bits));
}
