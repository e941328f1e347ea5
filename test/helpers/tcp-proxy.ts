// A TCP proxy of the test's own in front of a shared server, so a test can cut the
// connection or slow its answers without touching the server itself.
import net from "node:net";

export class TcpProxy {
  #server: net.Server;
  #sockets = new Set<net.Socket>();
  #cut = false;
  #held: { deliveries: (() => void)[]; first: () => void } | undefined;
  /** Delay added to every chunk the server sends back, in milliseconds. */
  responseDelay = 0;
  /** Connections clients have opened, refused ones included: whether anyone tried. */
  connections = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.#server = net.createServer((client) => this.#connect(client));
  }

  #connect(client: net.Socket): void {
    this.connections++;
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (this.#held) {
        upstream.pause();
        this.#held.deliveries.push(() => {
          client.write(chunk);
          upstream.resume();
        });
        this.#held.first();
      } else if (this.responseDelay === 0) client.write(chunk);
      else {
        upstream.pause();
        setTimeout(() => {
          client.write(chunk);
          upstream.resume();
        }, this.responseDelay);
      }
    });
    upstream.on("end", () => client.end());
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  /**
   * Holds every answer from the server until release(). Resolves once one answer is held: the
   * server has then run the query, and the client has not heard back.
   */
  hold(): Promise<void> {
    return new Promise((resolve) => {
      this.#held = { deliveries: [], first: resolve };
    });
  }

  /** Delivers what hold() kept back, in order, and stops holding. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    for (const deliver of held?.deliveries ?? []) deliver();
  }

  /** Drops every connection and refuses new ones until restore(). */
  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
