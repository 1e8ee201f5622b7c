/**
 * A real HTTP receiver on a loopback address (a `node:http` server on a free port) that records what
 * reaches it: every request with its body, and every TCP connection.
 */
import type { LookupAddress } from 'node:dns';
import type dns from 'node:dns';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpCallRequest } from '@hourglass/core';

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Answers (or holds) one request; called once its body has arrived. */
export type Respond = (request: ReceivedRequest, response: http.ServerResponse) => void;

export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  connections = 0;
  private readonly waiting: Array<{ count: number; resolve: () => void }> = [];

  private constructor(
    private readonly server: http.Server,
    readonly address: string,
    readonly port: number,
  ) {}

  /** Listens on `address` (a loopback address), on `port` or a free one. */
  static async start(respond: Respond, address = '127.0.0.1', port = 0): Promise<Receiver> {
    const server = http.createServer();
    server.listen(port, address);
    await once(server, 'listening');
    const receiver = new Receiver(server, address, (server.address() as AddressInfo).port);
    server.on('connection', () => {
      receiver.connections += 1;
    });
    server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received: ReceivedRequest = {
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks),
        };
        receiver.requests.push(received);
        respond(received, response);
        receiver.wakeWaiters();
      });
    });
    return receiver;
  }

  /** host:port, as the caller names this receiver in errors. */
  get host(): string {
    return `${this.address}:${this.port}`;
  }

  url(path = '/hook'): string {
    return `http://${this.address}:${this.port}${path}`;
  }

  /** Resolves once `count` requests in all have arrived. */
  waitForRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ count, resolve }));
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private wakeWaiters(): void {
    for (const waiter of [...this.waiting]) {
      if (this.requests.length >= waiter.count) {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
}

/** A port nothing listens on: bound once to get a free number, then closed. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function callbackRequest(
  url: string,
  overrides: Partial<HttpCallRequest> = {},
): HttpCallRequest {
  return {
    app: 'shop',
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1' },
    body: Buffer.from('{"order":42}'),
    timeoutMs: 5000,
    expectBody: null,
    ...overrides,
  };
}

/**
 * A resolver with fixed answers (names not listed fail with ENOTFOUND), answering asynchronously
 * like the real one. Cast: dns.lookup's overloads cannot be written as one plain function.
 */
export function fixedLookup(answers: Readonly<Record<string, LookupAddress[]>>): typeof dns.lookup {
  const lookup = (
    hostname: string,
    _options: unknown,
    callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
  ): void => {
    const found = answers[hostname];
    if (found) {
      process.nextTick(callback, null, found);
      return;
    }
    const error: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
    error.code = 'ENOTFOUND';
    process.nextTick(callback, error, []);
  };
  return lookup as unknown as typeof dns.lookup;
}
