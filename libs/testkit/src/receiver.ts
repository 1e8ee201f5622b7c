/**
 * A real HTTP receiver for callback tests: a `node:http` server on 127.0.0.1 that records every
 * request (when it arrived, its method, headers and body) and answers as the test says.
 * `waitFor` resolves on the request that completes a count, so tests await events, not sleeps.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly receivedAtMs: number;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** What to answer: a status (and body), or `hang` to never answer (until the server stops). */
export type ReceiverAnswer =
  | { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> }
  | 'hang';

export type Responder = (request: ReceivedRequest, index: number) => ReceiverAnswer;

export interface TestReceiver {
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Changes how later requests are answered. */
  respond(responder: Responder): void;
  /** Resolves once `count` requests (matching `filter`, if given) arrived; rejects after `timeoutMs`. */
  waitFor(
    count: number,
    timeoutMs: number,
    filter?: (request: ReceivedRequest) => boolean,
  ): Promise<ReceivedRequest[]>;
  stop(): Promise<void>;
}

export async function startReceiver(
  responder: Responder = () => ({ status: 200, body: 'ok' }),
): Promise<TestReceiver> {
  let answer = responder;
  const requests: ReceivedRequest[] = [];
  const waiters = new Set<() => void>();
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: ReceivedRequest = {
        receivedAtMs: Date.now(),
        method: req.method ?? '',
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      const index = requests.length;
      requests.push(request);
      for (const waiter of waiters) waiter();
      const reply = answer(request, index);
      if (reply === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? '');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    respond(next) {
      answer = next;
    },
    waitFor(count, timeoutMs, filter = () => true) {
      const matching = (): ReceivedRequest[] => requests.filter(filter);
      if (matching().length >= count) return Promise.resolve(matching());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`receiver: ${matching().length} of ${count} requests within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const check = (): void => {
          if (matching().length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(matching());
        };
        waiters.add(check);
      });
    },
    async stop() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
