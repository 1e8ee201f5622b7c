/**
 * Membership: the node's lease, its keepalive, the freshness rule, and the node key registered on
 * the lease.
 *
 * The keepalive is run here rather than by etcd3's `Lease`, because that one gives up after 2 × TTL
 * without an answer and declares the lease lost, even when etcd was merely unreachable and renewed
 * every lease when it came back (it does so on restart and on leader election). Here a lease is
 * lost only when etcd says so (a keepalive answered with TTL 0, or our node key found gone), so a
 * short outage ends with the same lease, the same keys, and nothing to move.
 *
 * Freshness: etcd extends a lease when it receives a keepalive, which is after we sent it, so the
 * lease lives at least TTL past the send time of the last answered keepalive. Ownership is
 * confirmed until TTL - margin past it.
 */
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Namespace } from 'etcd3';
import { nodeKey } from './keys';
import type { NodeInfo } from './keys';
import type { Settings } from './options';

type KeepaliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

export interface SessionEvents {
  /** etcd said the lease is gone (expired or revoked), or our registration was found gone. */
  lost(session: Session, reason: unknown): void;
  /** A keepalive was answered after the stream to etcd had broken: etcd is reachable again. */
  reconnected(session: Session): void;
}

/** One lease, and the registration made on it. Once lost, a session stays lost. */
export class Session {
  lost = false;
  /** Send time of the last keepalive etcd answered (or of the grant): the lease lives TTL past it. */
  renewedAtMs: number;
  /** Mod revision of our node key, to delete exactly that registration when leaving. */
  nodeKeyRevision = 0;
  /** Keepalives awaiting their answer on the current stream (etcd answers in order). */
  private readonly sent: Array<{ readonly atMs: number; readonly monotonicMs: number }> = [];
  private stream: KeepaliveStream | undefined;
  private readonly timer: NodeJS.Timeout;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private broken = false;
  private closed = false;

  private constructor(
    private readonly client: Etcd3,
    private readonly settings: Settings,
    private readonly events: SessionEvents,
    readonly leaseId: string,
    grantSentAtMs: number,
  ) {
    this.renewedAtMs = grantSentAtMs;
    this.timer = setInterval(() => this.fire(), settings.keepaliveIntervalMs);
    this.connect();
  }

  /** Grants a lease and starts keeping it alive. */
  static async grant(client: Etcd3, settings: Settings, events: SessionEvents): Promise<Session> {
    const sentAt = settings.clock.now();
    const granted = await client.leaseClient.leaseGrant({ TTL: settings.ttlSeconds });
    return new Session(client, settings, events, granted.ID, sentAt);
  }

  isFresh(): boolean {
    const { clock, ttlSeconds, fenceMarginMs } = this.settings;
    return clock.now() - this.renewedAtMs < ttlSeconds * 1000 - fenceMarginMs;
  }

  /** The lease is gone (or must be treated so): stops the keepalive and tells the coordinator. */
  markLost(reason: unknown): void {
    if (this.lost) return;
    this.lost = true;
    this.close();
    this.events.lost(this, reason);
  }

  /** Stops keeping the lease alive; it expires after its TTL unless revoked. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    this.dropStream();
  }

  private connect(): void {
    this.retry = undefined;
    if (this.closed) return;
    this.client.leaseClient.leaseKeepAlive().then(
      (stream) => {
        if (this.closed) {
          endStream(stream);
          return;
        }
        this.stream = stream;
        this.sent.length = 0;
        stream.on('data', (answer) => {
          if (this.stream === stream) this.answered(answer);
        });
        stream.on('error', (error) => this.breakStream(stream, error));
        stream.on('end', () => this.breakStream(stream, new Error('keepalive stream ended')));
        this.fire();
      },
      (error: unknown) => this.reconnectLater(error),
    );
  }

  private fire(): void {
    const stream = this.stream;
    if (!stream || this.closed) return;
    const monotonicMs = performance.now();
    const oldest = this.sent[0];
    if (oldest !== undefined && monotonicMs - oldest.monotonicMs > this.settings.callTimeoutMs) {
      // Unanswered for a call timeout: the connection is dead without having said so.
      this.breakStream(stream, new Error('keepalive unanswered'));
      return;
    }
    this.sent.push({ atMs: this.settings.clock.now(), monotonicMs });
    try {
      stream.write({ ID: this.leaseId });
    } catch (error) {
      this.breakStream(stream, error);
    }
  }

  private answered(answer: ILeaseKeepAliveResponse): void {
    const sentAt = this.sent.shift()?.atMs;
    if (answer.TTL === '0') {
      this.markLost(new EtcdLeaseInvalidError(this.leaseId));
      return;
    }
    if (sentAt !== undefined && sentAt > this.renewedAtMs) this.renewedAtMs = sentAt;
    this.failures = 0;
    if (this.broken) {
      this.broken = false;
      this.events.reconnected(this);
    }
  }

  private breakStream(stream: KeepaliveStream, error: unknown): void {
    if (this.stream !== stream) return;
    this.dropStream();
    this.reconnectLater(error);
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.sent.length = 0;
    if (stream) endStream(stream);
  }

  private reconnectLater(error: unknown): void {
    if (this.closed || this.retry) return;
    if (!this.broken)
      this.settings.logger.debug(
        { err: error, lease: this.leaseId },
        'etcd keepalive broke; reconnecting',
      );
    this.broken = true;
    const delayMs = Math.min(this.settings.keepaliveIntervalMs, 100 * 2 ** this.failures++);
    this.retry = setTimeout(() => this.connect(), delayMs);
  }
}

function endStream(stream: KeepaliveStream): void {
  try {
    stream.cancel();
  } catch {
    // Already gone.
  }
}

/** Revokes a lease by id; one that is already gone counts as revoked. */
export async function revokeLease(client: Etcd3, leaseId: string): Promise<void> {
  try {
    await client.leaseClient.leaseRevoke({ ID: leaseId });
  } catch (error) {
    if (!(error instanceof EtcdLeaseInvalidError)) throw error;
  }
}

/**
 * The current session and the leases of earlier ones. Leases of earlier sessions (and of an earlier
 * process with our node id, e.g. before a kill -9 and restart) are revoked when joining, so their
 * keys go at once rather than at expiry.
 */
export class Sessions {
  current: Session | undefined;
  private readonly staleLeases = new Set<string>();

  constructor(
    private readonly client: Etcd3,
    private readonly ns: Namespace,
    private readonly settings: Settings,
    private readonly events: SessionEvents,
  ) {}

  /** Whether the current lease is known alive: not lost, and renewed less than TTL - margin ago. */
  confirmed(): boolean {
    const session = this.current;
    return session !== undefined && !session.lost && session.isFresh();
  }

  /**
   * Grants a new lease, registers the node on it, then revokes the earlier leases (ours, and a
   * predecessor's with our id).
   * @throws when etcd cannot be reached; the current session (if any) is retired either way.
   */
  async join(): Promise<Session> {
    const { nodeId, logger, ttlSeconds, clock } = this.settings;
    if (this.current) this.retire(this.current);
    const session = await Session.grant(this.client, this.settings, this.events);
    try {
      const key = nodeKey(nodeId);
      const previous = String((await this.ns.get(key).exec()).kvs[0]?.lease ?? '0');
      // Not one of our own earlier leases (revokeStale has those): an earlier process's.
      const predecessor =
        previous !== '0' && !this.staleLeases.has(previous) ? previous : undefined;
      const info: NodeInfo = {
        id: nodeId,
        httpUrl: this.settings.httpUrl,
        grpcAddress: this.settings.grpcAddress,
        startedAt: new Date(clock.now()).toISOString(),
      };
      const put = await this.ns.put(key).value(JSON.stringify(info)).lease(session.leaseId).exec();
      session.nodeKeyRevision = Number(put.header.revision);
      // Revoked only once the node key is on the new lease: revoking first would delete it, and
      // the others would give our slots away as if we had left.
      await this.revokeStale();
      if (predecessor !== undefined) await this.revokePredecessor(predecessor);
    } catch (error) {
      this.retire(session);
      throw error;
    }
    if (session.lost) {
      this.retire(session);
      throw new Error('the lease was lost while registering');
    }
    this.current = session;
    logger.info({ lease: session.leaseId, ttlSeconds }, 'joined the cluster');
    return session;
  }

  /** Stops renewing a session's lease and queues it for revocation. */
  retire(session: Session): void {
    session.close();
    this.staleLeases.add(session.leaseId);
    if (this.current === session) this.current = undefined;
  }

  async revokeStale(): Promise<void> {
    for (const leaseId of [...this.staleLeases]) {
      try {
        await revokeLease(this.client, leaseId);
        this.staleLeases.delete(leaseId);
      } catch (error) {
        this.settings.logger.debug(
          { err: error },
          'revoking an old lease failed; it expires on its own',
        );
      }
    }
  }

  /**
   * A node key with our id on a lease that is not ours was left by an earlier process of this node
   * (killed, then restarted before its lease expired): revoking that lease frees its slots now
   * instead of after the TTL. That process is gone: two live nodes must never share an id.
   */
  private async revokePredecessor(lease: string): Promise<void> {
    await revokeLease(this.client, lease);
    this.settings.logger.warn(
      { lease },
      'revoked the lease of an earlier process with this node id (restarted before it expired?)',
    );
  }
}
