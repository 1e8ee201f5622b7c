/**
 * The callback receiver's own process (started by ./receiver.ts, which documents it): a plain
 * `node:http` server on 127.0.0.1, keep-alive, answering 200 (or what the parent says, during the
 * receiver fault). It has an event loop of its own, so the load generator and the Kafka consumer
 * in the suite's process never delay its receive times or its answers.
 *
 * Talks to its parent over the IPC channel:
 *   → {type: 'listening', port}                  once listening
 *   → {type: 'arrivals', arrivals: WireArrival[]} every FLUSH_MS while requests arrive
 *   ← {type: 'answer', status}  → {type: 'answering', status}
 *   ← {type: 'flush'}           → any arrivals still buffered, then {type: 'flushed'}
 * Exits when the parent goes away (the channel closes) or on SIGTERM.
 */
import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Bytes of a callback body read for its id; a chaos payload is far smaller. */
const MAX_BODY_BYTES = 4096;
const FLUSH_MS = 50;

/**
 * One request: hourglass-id (null when absent), receive time (epoch ms, when its headers had
 * arrived), hourglass-deliver-at and hourglass-attempt as sent (null when absent), the status
 * answered, and the body's `id` (null unless the body is the JSON payload the load sent).
 */
export type WireArrival = [
  id: string | null,
  receivedAt: number,
  deliverAt: string | null,
  attempt: string | null,
  status: number,
  bodyId: string | null,
];

export type ToParent =
  | { type: 'listening'; port: number }
  | { type: 'arrivals'; arrivals: WireArrival[] }
  | { type: 'answering'; status: number }
  | { type: 'flushed' };

export type ToChild = { type: 'answer'; status: number } | { type: 'flush' };

function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

function bodyIdOf(text: string): string | null {
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === 'object' && body !== null && 'id' in body && typeof body.id === 'string')
      return body.id;
  } catch {
    // not the JSON payload
  }
  return null;
}

function send(message: ToParent): void {
  if (process.connected) process.send?.(message);
}

let status = 200;
let buffered: WireArrival[] = [];

function flush(): void {
  if (buffered.length === 0) return;
  send({ type: 'arrivals', arrivals: buffered });
  buffered = [];
}

const server = createServer((req, res) => {
  const receivedAt = Date.now();
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    if (size < MAX_BODY_BYTES) chunks.push(chunk);
    size += chunk.length;
  });
  req.on('error', () => res.destroy());
  req.on('end', () => {
    const answered = status;
    const ok = answered >= 200 && answered < 300;
    res.writeHead(answered, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok' : 'chaos: receiver fault');
    buffered.push([
      header(req, 'hourglass-id'),
      receivedAt,
      header(req, 'hourglass-deliver-at'),
      header(req, 'hourglass-attempt'),
      answered,
      bodyIdOf(Buffer.concat(chunks).toString('utf8')),
    ]);
  });
});
// Idle pooled connections stay open 10 s; the `Keep-Alive: timeout=10` hint has undici drop them
// a little before, so a node does not send on a connection the receiver is closing.
server.keepAliveTimeout = 10_000;

const flusher = setInterval(flush, FLUSH_MS);

function exit(): void {
  clearInterval(flusher);
  flush();
  server.closeAllConnections();
  server.close();
  process.exit(0);
}

process.on('message', (message: ToChild) => {
  if (message.type === 'answer') {
    status = message.status;
    send({ type: 'answering', status });
  } else if (message.type === 'flush') {
    flush();
    send({ type: 'flushed' });
  }
});
process.on('disconnect', exit);
process.on('SIGTERM', exit);
// Ctrl-C reaches the whole process group: the parent decides when this process stops.
process.on('SIGINT', () => undefined);

server.listen(0, '127.0.0.1', () => {
  send({ type: 'listening', port: (server.address() as AddressInfo).port });
});
