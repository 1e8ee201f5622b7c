/**
 * A real HTTP receiver on 127.0.0.1 for callback tests: records every request and answers each
 * path as told (200 "ok" unless {@link CallbackSink.answer} says otherwise). Tests await the
 * request they expect with {@link CallbackSink.waitFor}, which resolves on the request's arrival
 * (or at once for one already received), never by sleeping.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedCall {
  readonly method: string;
  /** The path with its query. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The status this sink answered with. */
  readonly status: number;
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers?: Record<string, string>;
}

export class CallbackSink {
  readonly calls: ReceivedCall[] = [];
  private readonly answers = new Map<string, Answer>();
  private readonly events = new EventEmitter();
  private server: Server | undefined;
  private base = '';

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const path = req.url ?? '/';
        const answer = this.answers.get(path.split('?')[0] ?? path) ?? { status: 200, body: 'ok' };
        const call: ReceivedCall = {
          method: req.method ?? '',
          path,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          status: answer.status,
        };
        res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
        res.end(answer.body, () => {
          // Recorded once answered, so a test that saw the call knows the node has its answer.
          this.calls.push(call);
          this.events.emit('call', call);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** A URL on this sink. */
  url(path: string): string {
    return `${this.base}${path}`;
  }

  /** How to answer requests to `path` from now on. */
  answer(path: string, status: number, body = '', headers?: Record<string, string>): void {
    this.answers.set(path, { status, body, ...(headers ? { headers } : {}) });
  }

  /** Calls whose headers carry this `hourglass-id`. */
  callsFor(id: string): ReceivedCall[] {
    return this.calls.filter((call) => call.headers['hourglass-id'] === id);
  }

  /**
   * The `count`-th call (1 for the first) matching `predicate`, received already or to come;
   * rejects after `timeoutMs` naming what arrived.
   */
  waitFor(
    predicate: (call: ReceivedCall) => boolean,
    timeoutMs = 20_000,
    count = 1,
  ): Promise<ReceivedCall> {
    const matching = (): ReceivedCall | undefined => this.calls.filter(predicate)[count - 1];
    const found = matching();
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onCall = (): void => {
        const call = matching();
        if (!call) return;
        clearTimeout(timer);
        this.events.off('call', onCall);
        resolve(call);
      };
      const timer = setTimeout(() => {
        this.events.off('call', onCall);
        reject(
          new Error(
            `no matching callback within ${timeoutMs} ms; received: ${this.calls
              .map((call) => `${call.method} ${call.path} ${String(call.headers['hourglass-id'])}`)
              .join(', ')}`,
          ),
        );
      }, timeoutMs);
      this.events.on('call', onCall);
    });
  }

  /** The `count`-th call for message `id`. */
  waitForId(id: string, count = 1, timeoutMs = 20_000): Promise<ReceivedCall> {
    return this.waitFor((call) => call.headers['hourglass-id'] === id, timeoutMs, count);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export { pollUntil } from '@hourglass/testkit';
