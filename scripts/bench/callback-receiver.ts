/**
 * The HTTP callback receivers of the bench's callback scenario (scenario 6, scripts/bench/callbacks.ts),
 * in a child process of their own (forked with an IPC channel) so that their CPU is not the
 * bench's event loop and not the node's: plain `node:http` servers on 127.0.0.1.
 *
 * - the **quick** receiver answers every request `200 ok` on a kept-alive connection, and records
 *   its lateness: the time the request arrived (its headers parsed) minus its
 *   `hourglass-deliver-at` header (ISO-8601 of the due time);
 * - the **hanging** receiver reads each request and never answers (the node gives up after the
 *   callback's `timeoutMs`); it counts what reached it and what the node aborted.
 *
 * A callback's run and number travel in its id (`c<run>-<n>` for the quick receiver, `h<run>-<n>`
 * for the hanging one), so stragglers of an earlier phase never count in a later one. The parent
 * drives it with {@link ReceiverCommand}s and gets a {@link ReceiverReply} for each; the process
 * exits on `stop` or when the parent goes away.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LatenessSummary } from './common';
import { DeliveryTracker } from './common';

export type ReceiverCommand =
  | { id: number; type: 'track'; run: number; expected: number }
  | { id: number; type: 'status' }
  | { id: number; type: 'summary'; firstDueMs: number }
  | { id: number; type: 'stop' };

/** What the hanging receiver saw of the current run. */
export interface HangingCounts {
  /** Distinct callbacks of the run that reached it. */
  reached: number;
  /** Requests of the run it held when the node closed them (the node's timeout). */
  aborted: number;
  /** Requests of the run it holds now (neither answered nor closed). */
  open: number;
}

/** What the quick receiver saw besides lateness. */
export interface QuickCounts {
  /** TCP connections the node opened to it during the run (keep-alive: few). */
  connections: number;
  /** Requests whose id was not of the current run (stragglers) or not a bench id at all. */
  foreign: number;
  /** Requests with `hourglass-attempt` above 1 (retries of the current run). */
  retries: number;
  /** The receivers' process during the run: CPU (share of one core) and event-loop delay. */
  cpuShare?: number;
  loopDelayP99Ms?: number;
  loopDelayMaxMs?: number;
}

export type ReceiverReply =
  | { type: 'ready'; quickPort: number; hangingPort: number }
  | { id: number; type: 'ok' }
  | { id: number; type: 'status'; distinct: number; hanging: HangingCounts }
  | {
      id: number;
      type: 'summary';
      lateness: LatenessSummary;
      quick: QuickCounts;
      hanging: HangingCounts;
    }
  | { id: number; type: 'error'; message: string };

let run = 0;
let tracker = new DeliveryTracker(0, 0);
let quick: QuickCounts = { connections: 0, foreign: 0, retries: 0 };
let hangingSeen = new Set<number>();
let hanging: HangingCounts = { reached: 0, aborted: 0, open: 0 };
let connections = 0;
let connectionsAtTrack = 0;
const LOOP_RESOLUTION_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();
let cpuAtTrack = process.cpuUsage();
let wallAtTrack = performance.now();

/** `c12-345` → [12, 345] when the prefix matches, else undefined. */
function parseId(id: string | string[] | undefined, prefix: string): [number, number] | undefined {
  if (typeof id !== 'string' || !id.startsWith(prefix)) return undefined;
  const dash = id.indexOf('-');
  if (dash < 0) return undefined;
  const r = Number(id.slice(prefix.length, dash));
  const n = Number(id.slice(dash + 1));
  return Number.isInteger(r) && Number.isInteger(n) ? [r, n] : undefined;
}

function onQuick(req: IncomingMessage, res: ServerResponse): void {
  const receivedMs = Date.now();
  const parsed = parseId(req.headers['hourglass-id'], 'c');
  const due = Date.parse(String(req.headers['hourglass-deliver-at'] ?? ''));
  if (parsed && parsed[0] === run && Number.isFinite(due)) {
    if (Number(req.headers['hourglass-attempt'] ?? 1) > 1) quick.retries++;
    tracker.record(parsed[0], parsed[1], due, receivedMs);
  } else {
    quick.foreign++;
  }
  // Read the body before answering, so the connection is free for the next request (keep-alive).
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
}

function onHanging(req: IncomingMessage, res: ServerResponse): void {
  const parsed = parseId(req.headers['hourglass-id'], 'h');
  req.resume();
  if (!parsed || parsed[0] !== run) return; // held all the same: it never answers anybody
  const counts = hanging;
  if (!hangingSeen.has(parsed[1])) {
    hangingSeen.add(parsed[1]);
    counts.reached++;
  }
  counts.open++;
  res.on('close', () => {
    counts.open--;
    counts.aborted++;
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

const sockets = new Set<Socket>();
function keepSockets(server: Server): void {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
}

const quickServer = createServer(onQuick);
// Longer than the node's pooled-connection idle timeout (30 s), so the node closes idle ones.
quickServer.keepAliveTimeout = 65_000;
quickServer.headersTimeout = 66_000;
quickServer.on('connection', () => connections++);
keepSockets(quickServer);
const hangingServer = createServer(onHanging);
// Never time a held request out on this side: the node's timeout is what is measured.
hangingServer.requestTimeout = 0;
hangingServer.timeout = 0;
keepSockets(hangingServer);

function send(reply: ReceiverReply): void {
  process.send?.(reply);
}

function stop(): void {
  for (const socket of sockets) socket.destroy();
  quickServer.close();
  hangingServer.close();
  // IPC keeps the process alive; nothing else should. Exit even if a socket lingers.
  setTimeout(() => process.exit(0), 200).unref();
  process.disconnect?.();
}

process.on('message', (command: ReceiverCommand) => {
  try {
    switch (command.type) {
      case 'track':
        run = command.run;
        tracker = new DeliveryTracker(command.run, command.expected);
        quick = { connections: 0, foreign: 0, retries: 0 };
        connectionsAtTrack = connections;
        loopDelay.reset();
        cpuAtTrack = process.cpuUsage();
        wallAtTrack = performance.now();
        hangingSeen = new Set();
        hanging = { reached: 0, aborted: 0, open: 0 };
        send({ id: command.id, type: 'ok' });
        break;
      case 'status':
        send({ id: command.id, type: 'status', distinct: tracker.distinct, hanging });
        break;
      case 'summary': {
        const cpu = process.cpuUsage(cpuAtTrack);
        const wallMs = performance.now() - wallAtTrack;
        send({
          id: command.id,
          type: 'summary',
          lateness: tracker.summary(command.firstDueMs),
          quick: {
            ...quick,
            connections: connections - connectionsAtTrack,
            cpuShare: (cpu.user + cpu.system) / 1000 / Math.max(1, wallMs),
            // The histogram holds whole sampling intervals: the delay is what exceeds 10 ms.
            loopDelayP99Ms: Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS),
            loopDelayMaxMs: Math.max(0, loopDelay.max / 1e6 - LOOP_RESOLUTION_MS),
          },
          hanging,
        });
        break;
      }
      case 'stop':
        send({ id: command.id, type: 'ok' });
        stop();
        break;
    }
  } catch (error) {
    send({
      id: command.id,
      type: 'error',
      message: error instanceof Error ? error.message : String(error),
    });
  }
});
// The bench went away (or stopped us): nothing is left to receive for.
process.on('disconnect', () => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});

void Promise.all([listen(quickServer), listen(hangingServer)]).then(
  ([quickPort, hangingPort]) => send({ type: 'ready', quickPort, hangingPort }),
  (error: unknown) => {
    process.stderr.write(`callback receiver: ${String(error)}\n`);
    process.exit(1);
  },
);
