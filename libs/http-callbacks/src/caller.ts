/**
 * The HTTP callback adapter: the only place that knows undici. One keep-alive pool per origin,
 * the SSRF guard on every address connected to, and bounds per destination host and per app.
 *
 * Isolation: a call waits only for its own host's and app's permits, and each call has its own
 * timer, so a receiver that hangs holds at most `maxInFlightPerHost` calls of its own host (and
 * that many of its app's permits); calls to other hosts go on. Nothing global serialises.
 *
 * Bounds on time: a call waits at most `timeoutMs` in the queues, then at most `timeoutMs` for
 * the exchange (connect, headers and body), so it resolves within twice its timeout.
 */
import dns from 'node:dns';
import { setImmediate as nextLoopTurn } from 'node:timers/promises';
import type { AddressPolicy, HttpCallRequest, HttpCallResult, HttpCaller } from '@hourglass/core';
import { Agent } from 'undici';
import { CallFailure } from './errors';
import { describeFailure } from './failures';
import type { Lookup } from './guard';
import { guardedLookup, refusalOfUrlHost } from './guard';
import { KeyedLimits } from './limits';
import { failedCall, judgeResponse, readBoundedBody } from './response';

export interface HttpCallerOptions {
  /** The SSRF guard: which addresses callbacks may connect to. */
  policy: AddressPolicy;
  /** Connections kept per origin (the undici pool size). @default 32 */
  maxConnectionsPerHost?: number;
  /** Requests under way per destination host (host:port); more wait in a FIFO queue. @default 64 */
  maxInFlightPerHost?: number;
  /** Requests under way per app. @default 256 */
  maxInFlightPerApp?: number;
  /** Calls waiting per destination host beyond which a call fails at once. @default 10000 */
  maxQueuedPerHost?: number;
  /** Most bytes of a response read; the rest is not read (the connection is closed). @default 65536 */
  maxResponseBytes?: number;
  /** Bytes of the response body kept as `responseSnippet`. @default 1024 */
  snippetBytes?: number;
  /** How long an idle pooled connection stays open. @default 30000 */
  keepAliveTimeoutMs?: number;
  /** The resolver whose answers the guard checks. @default dns.lookup */
  lookup?: Lookup;
  /** The clock for durations and `Retry-After` dates. @default Date.now */
  now?: () => number;
}

/** Options with every default applied. */
interface CallerSettings {
  readonly maxResponseBytes: number;
  readonly snippetBytes: number;
}

/**
 * undici's own timers fire late or early by up to half a second (they tick coarsely), so they only
 * back up the call's timer, which decides.
 */
const UNDICI_TIMEOUT_SLACK_MS = 1000;

const STOPPED_MESSAGE = 'the callback caller stopped (the node is shutting down)';

export class UndiciHttpCaller implements HttpCaller {
  private readonly agent: Agent;
  private readonly policy: AddressPolicy;
  private readonly now: () => number;
  private readonly settings: CallerSettings;
  private readonly hostLimits: KeyedLimits;
  private readonly appLimits: KeyedLimits;
  /** Calls under way, aborted by {@link stop}. */
  private readonly underway = new Set<AbortController>();
  private stopping: Promise<void> | undefined;

  constructor(options: HttpCallerOptions) {
    this.policy = options.policy;
    this.now = options.now ?? Date.now;
    this.settings = {
      maxResponseBytes: options.maxResponseBytes ?? 65_536,
      snippetBytes: options.snippetBytes ?? 1024,
    };
    // A call holds its host's permit while it waits for its app's (see call), so the app queue is
    // bounded by the host queues' permits and needs no cap of its own.
    this.hostLimits = new KeyedLimits({
      limit: options.maxInFlightPerHost ?? 64,
      maxQueued: options.maxQueuedPerHost ?? 10_000,
      messages: {
        queueFull: (host) => `too many callbacks queued for ${host}`,
        waitedTooLong: (host, ms) => `waited more than ${ms} ms for a free connection to ${host}`,
      },
    });
    const maxInFlightPerApp = options.maxInFlightPerApp ?? 256;
    this.appLimits = new KeyedLimits({
      limit: maxInFlightPerApp,
      maxQueued: Number.POSITIVE_INFINITY,
      messages: {
        queueFull: (app) => `too many callbacks queued for app ${app}`,
        // The wait limit here is what remained of the timeout after the host queue: not worth naming.
        waitedTooLong: (app) =>
          `app ${app} already has ${maxInFlightPerApp} callbacks under way, and none ended within the timeout`,
      },
    });
    this.agent = new Agent({
      connections: options.maxConnectionsPerHost ?? 32,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: { lookup: guardedLookup(this.policy, options.lookup ?? dns.lookup) },
    });
  }

  /**
   * Never throws: every failure, expected or not, is a result with `ok: false`. A call refused
   * before anything was sent (guard, queue) has `durationMs` 0: durations measure receivers.
   */
  async call(request: HttpCallRequest): Promise<HttpCallResult> {
    let host = request.url;
    try {
      const url = callbackUrl(request.url);
      host = hostKey(url);
      const refusal = refusalOfUrlHost(this.policy, url);
      if (refusal !== null) return failedCall(refusal, 0);
      return await this.callWithinLimits(request, url, host);
    } catch (error) {
      return failedCall(describeFailure(error, { host, timeoutMs: request.timeoutMs }), 0);
    }
  }

  /**
   * Host permit first, then app permit. The order is fixed (so waiting cannot deadlock) and puts
   * the host first so that calls queued behind a hung receiver hold none of their app's permits.
   */
  private async callWithinLimits(
    request: HttpCallRequest,
    url: URL,
    host: string,
  ): Promise<HttpCallResult> {
    this.throwIfStopped();
    const queuedAt = this.now();
    const releaseHost = await this.hostLimits.acquire(host, request.timeoutMs);
    try {
      const waitedMs = this.now() - queuedAt;
      const releaseApp = await this.appLimits.acquire(
        request.app,
        Math.max(0, request.timeoutMs - waitedMs),
      );
      try {
        this.throwIfStopped();
        return await this.exchange(request, url, host);
      } finally {
        releaseApp();
      }
    } finally {
      releaseHost();
    }
  }

  /** Sends the request and reads the response, all within `timeoutMs`. */
  private async exchange(
    request: HttpCallRequest,
    url: URL,
    host: string,
  ): Promise<HttpCallResult> {
    const controller = new AbortController();
    this.underway.add(controller);
    const startedAt = this.now();
    const timer = this.startTimer(controller, startedAt, request.timeoutMs);
    try {
      const response = await this.agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: controller.signal,
        headersTimeout: request.timeoutMs + UNDICI_TIMEOUT_SLACK_MS,
        bodyTimeout: request.timeoutMs + UNDICI_TIMEOUT_SLACK_MS,
      });
      const body = await readBoundedBody(response.body, this.settings.maxResponseBytes);
      const endedAt = this.now();
      // undici returns a kept-alive socket to its pool only one event-loop turn after the response
      // ends (client-h1.js, for servers that close despite keep-alive). Waiting for that turn
      // before this call (and its permits) ends lets the next call reuse the socket instead of
      // opening, and handshaking, another one.
      await nextLoopTurn();
      return judgeResponse(
        {
          status: response.statusCode,
          headers: response.headers,
          body,
          durationMs: endedAt - startedAt,
        },
        {
          expectBody: request.expectBody,
          snippetBytes: this.settings.snippetBytes,
          nowMs: endedAt,
        },
      );
    } catch (error) {
      // After an abort, undici's error says only "aborted"; the reason says why.
      const cause: unknown = controller.signal.aborted ? controller.signal.reason : error;
      const text = describeFailure(cause, { host, timeoutMs: request.timeoutMs });
      return failedCall(text, this.now() - startedAt);
    } finally {
      clearTimeout(timer.current);
      this.underway.delete(controller);
    }
  }

  /**
   * Aborts the call once `timeoutMs` have passed on the injected clock. setTimeout counts from
   * the event loop's cached time, so it can fire a little early; it is re-armed once for the rest.
   */
  private startTimer(
    controller: AbortController,
    startedAt: number,
    timeoutMs: number,
  ): { current?: NodeJS.Timeout } {
    const timer: { current?: NodeJS.Timeout } = {};
    let rearmed = false;
    const fire = (): void => {
      const remaining = timeoutMs - (this.now() - startedAt);
      if (remaining > 0 && !rearmed) {
        rearmed = true;
        timer.current = setTimeout(fire, remaining);
        return;
      }
      controller.abort(new CallFailure('TIMED_OUT', `timed out after ${timeoutMs} ms`));
    };
    timer.current = setTimeout(fire, timeoutMs);
    return timer;
  }

  /** Idempotent. Fails queued calls, aborts calls under way, and closes every pooled connection. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const stopped = new CallFailure('STOPPED', STOPPED_MESSAGE);
    this.hostLimits.failWaiting(stopped);
    this.appLimits.failWaiting(stopped);
    for (const controller of this.underway) controller.abort(stopped);
    await this.agent.destroy();
  }

  private throwIfStopped(): void {
    if (this.stopping) throw new CallFailure('STOPPED', STOPPED_MESSAGE);
  }
}

/** The URL of a callback, refused unless it is plain http(s) without credentials. */
function callbackUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CallFailure('INVALID_URL', `"${text}" is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CallFailure(
      'INVALID_URL',
      `${url.protocol} URLs cannot be called; use http or https`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new CallFailure('INVALID_URL', 'callback URLs cannot carry credentials; send a header');
  }
  return url;
}

/** The destination a per-host bound counts: host:port, with the scheme's port when none is given. */
function hostKey(url: URL): string {
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
  return `${url.hostname}:${port}`;
}
