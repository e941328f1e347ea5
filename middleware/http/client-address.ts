// The client's address, as IP allow-lists judge it: `req.ip` where Express sets it (so that the
// app's `trust proxy` setting decides which forwarded address counts), else the socket's.
import type { IncomingMessage } from "node:http";

export function clientAddress(req: IncomingMessage): string | undefined {
  const ip = (req as { ip?: unknown }).ip;
  return typeof ip === "string" ? ip : req.socket?.remoteAddress;
}
