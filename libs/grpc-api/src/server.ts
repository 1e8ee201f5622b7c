/**
 * The gRPC exporter (hourglass.v1.Messages, proto/hourglass/v1/messages.proto). Like the HTTP
 * exporter it only translates: calls into {@link MessageService} calls, and {@link HourglassError}s
 * into gRPC statuses through ERROR_TABLE, with the stable code in trailing metadata.
 */
import { randomUUID } from 'node:crypto';
import type {
  GrpcObject,
  ServerUnaryCall,
  ServiceDefinition,
  UntypedServiceImplementation,
  sendUnaryData,
} from '@grpc/grpc-js';
import { Metadata, Server, ServerCredentials, loadPackageDefinition } from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
import { ERROR_TABLE, HourglassError, isHourglassError, parseBatch } from '@hourglass/core';
import type { Logger } from '@hourglass/core';
import type { AppDirectory, AppIdentity, MessageService } from '@hourglass/engine';
import { bearerToken } from '@hourglass/engine';
import { debouncedField } from './debounce';
import { HealthService } from './health';
import { HEALTH_PROTO, MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from './proto';
import type { AttemptPb, BatchResultPb, MessagePb, ScheduleRequestPb } from './translate';
import {
  asciiJson,
  renumberBatchError,
  toAttemptPb,
  toErrorPb,
  toMessagePb,
  toScheduleBody,
} from './translate';
import type { UpdateRequestPb } from './update';
import { toUpdate } from './update';

/** What a handler passes to its callback on failure (grpc-js does not export the name). */
type ServerStatusResponse = Exclude<Parameters<sendUnaryData<unknown>>[0], null>;

/** The fully qualified name of the Messages service, as the health service reports it. */
export const MESSAGES_SERVICE = 'hourglass.v1.Messages';

/** Trailing-metadata keys of a refused call (documented in messages.proto). */
export const ERROR_CODE_KEY = 'hourglass-error-code';
export const ERROR_DETAILS_KEY = 'hourglass-error-details';
export const RETRY_AFTER_KEY = 'hourglass-retry-after';

export interface GrpcServerOptions {
  service: MessageService;
  apps: AppDirectory;
  logger: Logger;
  /**
   * Largest request message in bytes (a batch). Larger ones are refused by grpc-js with
   * RESOURCE_EXHAUSTED before reaching Hourglass.
   * @default 16777216 (16 MiB, as config limits.maxRequestBytes)
   */
  maxRequestBytes?: number;
  /**
   * How long {@link GrpcServer.stop} waits for calls in flight before cutting connections.
   * @default 10000
   */
  shutdownGraceMs?: number;
  /** Folder holding the .proto files. @default found by {@link protoDir} */
  protoDir?: string;
}

export interface GrpcServer {
  /** Binds and serves; resolves with the bound port (useful with port 0). Idempotent. */
  start(host: string, port: number): Promise<number>;
  /**
   * Reports NOT_SERVING, refuses new calls, lets calls in flight finish (up to the grace period)
   * and resolves once every connection is closed. Idempotent; safe before start.
   */
  stop(): Promise<void>;
}

interface ScheduleBatchRequestPb {
  messages?: ScheduleRequestPb[];
}
interface IdRequestPb {
  id?: string;
}

/** The call's status for an error: ERROR_TABLE's gRPC status, the code and details in metadata. */
export function toGrpcStatus(error: HourglassError): ServerStatusResponse {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, error.code);
  if (error.details && error.details.length > 0)
    metadata.set(ERROR_DETAILS_KEY, asciiJson(error.details));
  if (error.retryAfterSeconds !== undefined)
    metadata.set(RETRY_AFTER_KEY, String(Math.ceil(error.retryAfterSeconds)));
  return { code: ERROR_TABLE[error.code].grpc, details: error.message, metadata };
}

function serviceDefinition(root: GrpcObject, name: string): ServiceDefinition {
  let node: unknown = root;
  for (const part of name.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  const definition = (node as { service?: ServiceDefinition } | undefined)?.service;
  if (!definition) throw new Error(`service ${name} is not in the loaded .proto files`);
  return definition;
}

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const { service, apps, logger } = options;
  const health = new HealthService([MESSAGES_SERVICE]);
  let server: Server | undefined;
  let starting: Promise<number> | undefined;
  let stopping: Promise<void> | undefined;
  let draining = false;

  const authenticate = async (metadata: Metadata): Promise<AppIdentity> => {
    const token = bearerToken(metadata.get('authorization')[0]);
    if (!token)
      throw new HourglassError(
        'unauthenticated',
        'send an app token as "authorization: Bearer <token>" metadata',
      );
    const identity = await apps.authenticate(token);
    if (!identity) {
      throw new HourglassError(
        'unauthenticated',
        apps.isAdmin(token) ? 'the admin token cannot publish; use an app token' : 'unknown token',
      );
    }
    return identity;
  };

  /** One unary method: authenticate, run, map any failure to a status. Never rejects. */
  const unary =
    <Req, Res>(method: string, run: (app: AppIdentity, request: Req) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const started = process.hrtime.bigint();
      const finish = (error: ServerStatusResponse | null, value?: Res): void => {
        // Never log metadata: it carries tokens.
        logger.debug(
          { method, code: error?.code ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 },
          'grpc call',
        );
        callback(error, value);
      };
      void (async () => {
        if (draining)
          throw new HourglassError(
            'shutting_down',
            'this node is shutting down; send to another node',
          );
        return run(await authenticate(call.metadata), call.request);
      })().then(
        (value) => finish(null, value),
        (error: unknown) => {
          if (isHourglassError(error)) {
            finish(toGrpcStatus(error));
            return;
          }
          const incident = randomUUID();
          logger.error({ err: error, incident, method }, 'unhandled error');
          finish(
            toGrpcStatus(new HourglassError('internal', `internal error; incident ${incident}`)),
          );
        },
      );
    };

  const scheduleBatch = async (
    app: AppIdentity,
    request: ScheduleBatchRequestPb,
  ): Promise<{ results: BatchResultPb[] }> => {
    const items = request.messages ?? [];
    // Items whose payload_json is not JSON are refused here; the rest go to the service as one
    // batch, and their error paths are renumbered back to the caller's positions.
    const refused = new Map<number, HourglassError>();
    const bodies: unknown[] = [];
    const positions: number[] = [];
    items.forEach((item, index) => {
      try {
        bodies.push(toScheduleBody(item, `messages/${index}/`, service.limits.maxPayloadDepth));
        positions.push(index);
      } catch (error) {
        if (!isHourglassError(error)) throw error;
        refused.set(index, error);
      }
    });
    if (refused.size > 0) parseBatch({ messages: items }, service.limits); // the batch size is checked first, as over HTTP
    // With no refusals the service sees the batch as sent (and checks its size itself).
    const served =
      refused.size === 0 || bodies.length > 0
        ? await service.scheduleBatch(app, { messages: bodies })
        : [];
    const results = new Array<BatchResultPb | undefined>(items.length);
    for (const [index, error] of refused)
      results[index] = { error: toErrorPb(error), created: false };
    served.forEach((result, j) => {
      const position = positions[j];
      if (position === undefined) return;
      if (result.ok)
        results[position] = { message: toMessagePb(result.message), created: result.created };
      else
        results[position] = {
          error: toErrorPb(
            refused.size > 0 ? renumberBatchError(result.error, positions) : result.error,
          ),
          created: false,
        };
    });
    return {
      results: results.map(
        (result) =>
          result ?? {
            error: toErrorPb(new HourglassError('internal', 'no result for the message')),
            created: false,
          },
      ),
    };
  };

  const messages: UntypedServiceImplementation = {
    Schedule: unary('Schedule', async (app, request: ScheduleRequestPb) => {
      const { created, message } = await service.schedule(
        app,
        toScheduleBody(request, '', service.limits.maxPayloadDepth),
      );
      return { created, message: toMessagePb(message), ...debouncedField(message) };
    }),
    ScheduleBatch: unary('ScheduleBatch', scheduleBatch),
    Get: unary('Get', async (app, request: IdRequestPb): Promise<MessagePb> =>
      toMessagePb(await service.get(app, request.id ?? '')),
    ),
    Cancel: unary('Cancel', async (app, request: IdRequestPb) =>
      service.cancel(app, request.id ?? ''),
    ),
    ListAttempts: unary(
      'ListAttempts',
      async (app, request: IdRequestPb): Promise<{ attempts: AttemptPb[] }> => ({
        attempts: (await service.attempts(app, request.id ?? '')).map(toAttemptPb),
      }),
    ),
    RetryMessage: unary('RetryMessage', async (app, request: IdRequestPb): Promise<MessagePb> =>
      toMessagePb(await service.retry(app, request.id ?? '')),
    ),
    Update: unary('Update', async (app, request: UpdateRequestPb): Promise<MessagePb> => {
      const { id, patch, ifMatch } = toUpdate(request, service.limits.maxPayloadDepth);
      return toMessagePb(await service.update(app, id, patch, ifMatch));
    }),
  };

  const bind = async (host: string, port: number): Promise<number> => {
    const dir = options.protoDir ?? protoDir();
    const definition = await load([MESSAGES_PROTO, HEALTH_PROTO], {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [dir],
    });
    const root = loadPackageDefinition(definition);
    const instance = new Server({
      'grpc.max_receive_message_length': options.maxRequestBytes ?? 16 * 1024 * 1024,
    });
    instance.addService(serviceDefinition(root, MESSAGES_SERVICE), messages);
    instance.addService(serviceDefinition(root, 'grpc.health.v1.Health'), health.implementation());
    // IPv6 literals need brackets in a gRPC target.
    const target =
      host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => {
      instance.bindAsync(target, ServerCredentials.createInsecure(), (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      );
    });
    server = instance;
    health.setAll('SERVING');
    logger.info({ grpc: `${host}:${bound}` }, 'gRPC server listening');
    return bound;
  };

  return {
    start(host, port) {
      if (stopping) return Promise.reject(new Error('the gRPC server was stopped'));
      starting ??= bind(host, port);
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        draining = true;
        await starting?.catch(() => undefined);
        const instance = server;
        if (!instance) return;
        health.setAll('NOT_SERVING');
        health.endWatches();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            logger.warn(
              { graceMs: options.shutdownGraceMs ?? 10_000 },
              'gRPC calls still running after the grace period; closing connections',
            );
            instance.forceShutdown();
            resolve();
          }, options.shutdownGraceMs ?? 10_000);
          force.unref();
          instance.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      })();
      return stopping;
    },
  };
}
