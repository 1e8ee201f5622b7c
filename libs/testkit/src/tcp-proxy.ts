/**
 * A TCP proxy in front of a real service, to cut a client off without stopping the service that
 * other tests (and other developers) share. `cut()` resets every connection and every new one
 * until `restore()`; `freeze()` keeps them open but moves no byte until `restore()` (a partition
 * that drops packets, then heals). The service itself never notices more than idle or closed
 * connections.
 */
import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: 'open' | 'cut' | 'frozen' = 'open';

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port and forwards to `target` (`http://host:port` or `host:port`). */
  static async start(target: string): Promise<TcpProxy> {
    const url = new URL(target.includes('://') ? target : `tcp://${target}`);
    const host = url.hostname;
    const port = Number(url.port);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.accept(client, host, port));
    return proxy;
  }

  /** What clients connect to, as an etcd endpoint. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resets every open connection, and every new one until {@link restore}. */
  cut(): void {
    this.mode = 'cut';
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stops moving bytes on every connection, open or new, until {@link restore}. */
  freeze(): void {
    this.mode = 'frozen';
    for (const pair of this.pairs) stall(pair);
  }

  restore(): void {
    this.mode = 'open';
    for (const pair of this.pairs) flow(pair);
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host, port });
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    for (const socket of pair) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      });
    }
    if (this.mode === 'open') flow(pair);
    else stall(pair);
  }
}

function flow([client, upstream]: [Socket, Socket]): void {
  client.pipe(upstream);
  upstream.pipe(client);
}

function stall([client, upstream]: [Socket, Socket]): void {
  client.unpipe(upstream);
  upstream.unpipe(client);
  client.pause();
  upstream.pause();
}
