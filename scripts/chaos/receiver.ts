/**
 * The callback receiver: a plain `node:http` server on 127.0.0.1 (keep-alive, as any receiver)
 * that the callback part of the load points its messages at. It records every request that
 * carries an `hourglass-id`: when it arrived (before its body was read), its
 * `hourglass-deliver-at` and `hourglass-attempt`, and what it was answered.
 *
 * It answers 200, except during the `receiver` fault, when it answers 503 (without
 * `Retry-After`, so the message's own retry strategy decides when the node tries again). A 503'd
 * request is a failed attempt, not a delivery: it counts for the early check (it reached the
 * receiver), not as a receipt.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { bounded } from './common';

/** Bytes of a callback body read for its id; a chaos payload is far smaller. */
const MAX_BODY_BYTES = 4096;

export interface CallbackReceipt {
  /** When the request's headers had arrived, epoch ms. */
  receivedAt: number;
  /** `hourglass-deliver-at` (ISO-8601), epoch ms; NaN when absent or not a date. */
  deliverAt: number;
  /** `hourglass-attempt` (1 for the first), NaN when absent. */
  attempt: number;
  /** What the receiver answered. */
  status: number;
  /** Whether that answer was a success (2xx): only those are deliveries. */
  accepted: boolean;
  /** The body's `id` when it is the JSON payload the load sent, otherwise null. */
  bodyId: string | null;
}

export class CallbackReceiver {
  /** Every request with an `hourglass-id`, by id, in arrival order. */
  readonly receipts = new Map<string, CallbackReceipt[]>();
  /** Ids with at least one request answered 2xx. */
  readonly delivered = new Set<string>();
  /** Requests without an `hourglass-id` header. */
  anonymous = 0;
  /** Requests answered, 2xx or not. */
  requests = 0;
  /** Requests answered with a failure status (during the `receiver` fault). */
  refused = 0;
  private status = 200;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private base = '';

  constructor(private readonly path: string) {}

  /** The URL the callback messages name. */
  get url(): string {
    return `${this.base}${this.path}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    // Idle pooled connections stay open 10 s; the `Keep-Alive: timeout=10` hint has undici drop
    // them a little before, so a node does not send on a connection the receiver is closing.
    server.keepAliveTimeout = 10_000;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** From now on, answer every request with `status` (200 again to end a fault). */
  answerWith(status: number): void {
    this.status = status;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const receivedAt = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size < MAX_BODY_BYTES) chunks.push(chunk);
      size += chunk.length;
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const status = this.status;
      const accepted = status >= 200 && status < 300;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(accepted ? 'ok' : 'chaos: receiver fault');
      this.requests++;
      const id = header(req, 'hourglass-id');
      if (id === undefined) {
        this.anonymous++;
        return;
      }
      if (!accepted) this.refused++;
      const deliverAtText = header(req, 'hourglass-deliver-at');
      const receipt: CallbackReceipt = {
        receivedAt,
        deliverAt: deliverAtText === undefined ? NaN : Date.parse(deliverAtText),
        attempt: Number(header(req, 'hourglass-attempt') ?? 'NaN'),
        status,
        accepted,
        bodyId: bodyIdOf(Buffer.concat(chunks).toString('utf8')),
      };
      const list = this.receipts.get(id);
      if (list) list.push(receipt);
      else this.receipts.set(id, [receipt]);
      if (accepted) this.delivered.add(id);
    });
  }

  /** Closes the server and every connection (the nodes' pooled ones included). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await bounded(closed, 5_000, 'closing the callback receiver');
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function bodyIdOf(text: string): string | null {
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === 'object' && body !== null && 'id' in body) {
      const id = body.id;
      if (typeof id === 'string') return id;
    }
  } catch {
    // not the JSON payload
  }
  return null;
}
