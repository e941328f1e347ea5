// Sends a request as raw bytes over a socket, so tests can send what HTTP clients refuse to:
// duplicated headers, raw UTF-8 in header values, oversized values.
import net from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export function rawRequest(port: number, path: string, headerLines: string[]): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      const [statusLine = "", ...lines] = text.slice(0, split).split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: text.slice(split + 4) });
    });
    const head = [`GET ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", ...headerLines].join("\r\n");
    // write, not end: a half-closed socket makes the server drop a response that is still pending.
    socket.write(Buffer.from(`${head}\r\n\r\n`, "utf8"));
  });
}
