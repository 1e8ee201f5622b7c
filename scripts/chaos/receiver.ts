/**
 * The callback receiver the callback part of the load points its messages at: a plain
 * `node:http` server on 127.0.0.1 (keep-alive, answering 200) in a child process of its own
 * (./receiver-process.ts), so that this process's stalls (load generator, Kafka consumer) neither
 * delay its receive times nor hold back its answers (which a node would time out). It records
 * every request that carries an `hourglass-id`: when it arrived (before its body was read), its
 * `hourglass-deliver-at` and `hourglass-attempt`, and what it was answered; the child sends them
 * here every 50 ms.
 *
 * It answers 200, except during the `receiver` fault, when it answers 503 (without
 * `Retry-After`, so the message's own retry strategy decides when the node tries again). A 503'd
 * request is a failed attempt, not a delivery: it counts for the early check (it reached the
 * receiver), not as a receipt.
 *
 * The child stays in the suite's process group, like the nodes; it is stopped by its pid
 * (SIGTERM, SIGKILL after 5 s), and exits by itself when this process goes away.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { SetupError } from './common';
import type { ToChild, ToParent, WireArrival } from './receiver-process';
import { repoRoot } from './services';

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
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private running = false;
  private base = '';
  private readonly waiters: Array<{ type: ToParent['type']; resolve: () => void }> = [];

  constructor(private readonly path: string) {}

  /** The URL the callback messages name. */
  get url(): string {
    return `${this.base}${this.path}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', resolve(__dirname, 'receiver-process.ts')],
      { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    this.child = child;
    this.running = true;
    this.exited = new Promise((resolveExit) => {
      child.once('exit', () => {
        this.running = false;
        resolveExit();
      });
      child.once('error', () => {
        this.running = false;
        resolveExit();
      });
    });
    child.on('message', (message: ToParent) => this.onMessage(message));
    const listening = new Promise<number>((resolvePort) => {
      child.on('message', (message: ToParent) => {
        if (message.type === 'listening') resolvePort(message.port);
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const port = await Promise.race([
      listening,
      this.exited.then(() => {
        throw new SetupError('the callback receiver exited before it listened');
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new SetupError(`the callback receiver not listening after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    this.base = `http://127.0.0.1:${port}`;
  }

  /** From now on, answer every request with `status` (200 again to end a fault). */
  async answerWith(status: number): Promise<void> {
    await this.ask({ type: 'answer', status }, 'answering');
  }

  /** Resolves once every request answered so far is in {@link receipts}. */
  async flush(): Promise<void> {
    await this.ask({ type: 'flush' }, 'flushed');
  }

  private ask(message: ToChild, reply: ToParent['type']): Promise<void> {
    if (!this.running || !this.child?.connected) {
      return Promise.reject(new Error('the callback receiver is not running'));
    }
    const answered = new Promise<void>((resolveReply) =>
      this.waiters.push({ type: reply, resolve: resolveReply }),
    );
    this.child.send(message);
    return Promise.race([
      answered,
      this.exited.then(() => {
        throw new Error('the callback receiver exited');
      }),
    ]);
  }

  private onMessage(message: ToParent): void {
    if (message.type === 'arrivals') {
      for (const arrival of message.arrivals) this.record(arrival);
      return;
    }
    const index = this.waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) this.waiters.splice(index, 1)[0]?.resolve();
  }

  private record([id, receivedAt, deliverAt, attempt, status, bodyId]: WireArrival): void {
    this.requests++;
    if (id === null) {
      this.anonymous++;
      return;
    }
    const accepted = status >= 200 && status < 300;
    if (!accepted) this.refused++;
    const receipt: CallbackReceipt = {
      receivedAt,
      deliverAt: deliverAt === null ? NaN : Date.parse(deliverAt),
      attempt: Number(attempt ?? 'NaN'),
      status,
      accepted,
      bodyId,
    };
    const list = this.receipts.get(id);
    if (list) list.push(receipt);
    else this.receipts.set(id, [receipt]);
    if (accepted) this.delivered.add(id);
  }

  /** SIGKILL now (on the way out of the process). */
  kill(): void {
    if (this.running && this.child?.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }

  /** SIGTERM by pid, SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 5_000): Promise<void> {
    const pid = this.child?.pid;
    if (!this.running || pid === undefined) return;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
