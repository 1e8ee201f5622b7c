/** The gRPC transport (hourglass.v1.Messages), over @grpc/grpc-js with the .proto loaded at run time. */
import type {
  ChannelOptions,
  Client,
  ServiceClientConstructor,
  ServiceDefinition,
  ServiceError,
} from '@grpc/grpc-js';
import { Metadata, credentials, loadPackageDefinition, status as GrpcStatus } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { ErrorDetail, ServerErrorCode } from './errors';
import { HourglassClientError, RETRIABLE_SERVER_CODES, isServerErrorCode } from './errors';
import { MESSAGES_PROTO, findProtoDir } from './proto';
import type { WirePatch } from './patch';
import type { Transport } from './transport';
import type { Attempt, BatchItemResult, CancelResult, Message, ScheduleResult } from './types';
import type { RawAttempt, RawMessage, WireHttpTarget, WireMessage, WireTarget } from './wire';
import { toAttempt, toMessage } from './wire';

interface ErrorPb {
  code: string;
  message: string;
  details: ErrorDetail[];
}
interface BatchResultPb {
  message?: RawMessage;
  error?: ErrorPb;
  created: boolean;
}

/** `hourglass.v1.HttpTarget`: the wire form already has the proto's camelCase names. */
function toHttpTargetPb(target: WireHttpTarget): Record<string, unknown> {
  return { ...target };
}

/** `hourglass.v1.Target`: the kind picks the oneof member. */
function toTargetPb(target: WireTarget): Record<string, unknown> {
  const { type, ...fields } = target;
  return type === 'http' ? { http: toHttpTargetPb(fields as WireHttpTarget) } : { kafka: fields };
}

/** `hourglass.v1.ScheduleRequest` with proto-loader's camelCase names. */
export function toScheduleRequestPb(message: WireMessage): Record<string, unknown> {
  const request: Record<string, unknown> = { id: message.id };
  if (message.topic !== undefined) request.topic = message.topic;
  if (message.key !== undefined) request.key = message.key;
  if (message.headers !== undefined) request.headers = message.headers;
  if (message.payload) {
    if ('json' in message.payload) request.payloadJson = message.payload.json;
    else request.payloadBytes = message.payload.bytes;
  }
  if (message.due) Object.assign(request, message.due);
  if (message.callback !== undefined) request.callback = toHttpTargetPb(message.callback);
  if (message.targets !== undefined) request.targets = message.targets.map(toTargetPb);
  if (message.retry !== undefined) request.retry = { ...message.retry };
  if (message.contentType !== undefined) request.contentType = message.contentType;
  if (message.debounce !== undefined) request.debounce = { ...message.debounce };
  return request;
}

/**
 * `hourglass.v1.UpdateRequest`: the content fields as in a ScheduleRequest, but headers in their
 * `Headers` wrapper (so `{}` is sent, and removes them) and a null key as `clear_key`.
 */
export function toUpdateRequestPb(
  id: string,
  patch: WirePatch,
  ifVersion: number | undefined,
): Record<string, unknown> {
  const { key, headers, ...shared } = patch;
  const request = toScheduleRequestPb({ id, ...shared });
  if (ifVersion !== undefined) request.ifVersion = ifVersion;
  if (headers !== undefined) request.headers = { entries: headers };
  if (key === null) request.clearKey = true;
  else if (key !== undefined) request.key = key;
  return request;
}

function parseDetails(value: unknown): ErrorDetail[] {
  if (typeof value !== 'string') return [];
  try {
    const parsed = JSON.parse(value) as unknown;
    return Array.isArray(parsed) ? (parsed as ErrorDetail[]) : [];
  } catch {
    return [];
  }
}

function errorFromStatus(error: ServiceError): HourglassClientError {
  const [code] = error.metadata?.get('hourglass-error-code') ?? [];
  if (typeof code === 'string') {
    const [details] = error.metadata.get('hourglass-error-details');
    const [retryAfter] = error.metadata.get('hourglass-retry-after');
    const seconds = typeof retryAfter === 'string' ? Number(retryAfter) : Number.NaN;
    return new HourglassClientError({
      code: code as ServerErrorCode,
      message: error.details,
      transport: 'grpc',
      grpcCode: error.code,
      retriable:
        error.code === GrpcStatus.UNAVAILABLE ||
        (isServerErrorCode(code) && RETRIABLE_SERVER_CODES.has(code)),
      details: parseDetails(details),
      ...(Number.isFinite(seconds) && seconds >= 0 ? { retryAfterMs: seconds * 1000 } : {}),
    });
  }
  // No Hourglass code: the call did not get an answer from Hourglass.
  switch (error.code) {
    case GrpcStatus.UNAVAILABLE:
      return new HourglassClientError({
        code: 'network_error',
        message: `request failed: ${error.details}`,
        transport: 'grpc',
        grpcCode: error.code,
        retriable: true,
        cause: error,
      });
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new HourglassClientError({
        code: 'timeout',
        message: 'no answer in time',
        transport: 'grpc',
        grpcCode: error.code,
        retriable: true,
        cause: error,
      });
    default:
      return new HourglassClientError({
        code: 'unexpected_response',
        message: `gRPC status ${error.code} without an Hourglass error code: ${error.details}`,
        transport: 'grpc',
        grpcCode: error.code,
        retriable: false,
        cause: error,
      });
  }
}

/** How the SDK decodes hourglass.v1 (exported for tests of the decoding). */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  // Zero-valued scalars (slot 0, attempts 0, created false) may be left off the wire; defaults
  // restores them. proto3 `optional` fields stay absent when unset; unset message fields (such as
  // `retry`) decode as null.
  defaults: true,
  oneofs: false,
} as const;

export interface GrpcTransportOptions {
  address: string;
  token: string;
  tls: boolean;
  protoDir?: string;
}

export class GrpcTransport implements Transport {
  readonly name = 'grpc';
  private readonly client: Client;
  private readonly methods: ServiceDefinition;

  constructor(private readonly options: GrpcTransportOptions) {
    const definition = loadSync(MESSAGES_PROTO, {
      ...LOADER_OPTIONS,
      includeDirs: [options.protoDir ?? findProtoDir()],
    });
    const root = loadPackageDefinition(definition) as unknown as {
      hourglass: { v1: { Messages: ServiceClientConstructor } };
    };
    const Messages = root.hourglass.v1.Messages;
    const channelOptions: ChannelOptions = {
      // The client retries with its own backoff; a shorter channel reconnect backoff than grpc-js's
      // 1 s default lets those retries find a reconnected channel.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 5000,
    };
    this.client = new Messages(
      options.address,
      options.tls ? credentials.createSsl() : credentials.createInsecure(),
      channelOptions,
    );
    this.methods = Messages.service;
  }

  private call<Res>(method: string, request: unknown, timeoutMs: number): Promise<Res> {
    const definition = this.methods[method];
    if (!definition) return Promise.reject(new Error(`${method} is not in ${MESSAGES_PROTO}`));
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${this.options.token}`);
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (error, response) => {
          if (error) reject(errorFromStatus(error));
          else resolve(response as Res);
        },
      );
    });
  }

  async schedule(message: WireMessage, timeoutMs: number): Promise<ScheduleResult> {
    const response = await this.call<{
      created: boolean;
      message: RawMessage;
      debounced?: boolean;
    }>('Schedule', toScheduleRequestPb(message), timeoutMs);
    return {
      created: response.created,
      message: toMessage(response.message),
      // proto3 `optional`: absent unless the request had a debounce, even with `defaults`.
      ...(response.debounced !== undefined ? { debounced: response.debounced } : {}),
    };
  }

  async scheduleBatch(
    messages: readonly WireMessage[],
    timeoutMs: number,
  ): Promise<BatchItemResult[]> {
    const response = await this.call<{ results: BatchResultPb[] }>(
      'ScheduleBatch',
      { messages: messages.map(toScheduleRequestPb) },
      timeoutMs,
    );
    return response.results.map((result): BatchItemResult => {
      if (result.message)
        return { ok: true, created: result.created, message: toMessage(result.message) };
      const error = result.error ?? {
        code: 'internal',
        message: 'no result for the message',
        details: [],
      };
      return {
        ok: false,
        error: new HourglassClientError({
          code: error.code as ServerErrorCode,
          message: error.message,
          transport: 'grpc',
          retriable: isServerErrorCode(error.code) && RETRIABLE_SERVER_CODES.has(error.code),
          details: error.details,
        }),
      };
    });
  }

  async get(id: string, timeoutMs: number): Promise<Message> {
    return toMessage(await this.call<RawMessage>('Get', { id }, timeoutMs));
  }

  async cancel(id: string, timeoutMs: number): Promise<CancelResult> {
    return this.call<CancelResult>('Cancel', { id }, timeoutMs);
  }

  async attempts(id: string, timeoutMs: number): Promise<Attempt[]> {
    const response = await this.call<{ attempts?: RawAttempt[] }>(
      'ListAttempts',
      { id },
      timeoutMs,
    );
    return (response.attempts ?? []).map(toAttempt);
  }

  async retry(id: string, timeoutMs: number): Promise<Message> {
    return toMessage(await this.call<RawMessage>('RetryMessage', { id }, timeoutMs));
  }

  async update(
    id: string,
    patch: WirePatch,
    ifVersion: number | undefined,
    timeoutMs: number,
  ): Promise<Message> {
    return toMessage(
      await this.call<RawMessage>('Update', toUpdateRequestPb(id, patch, ifVersion), timeoutMs),
    );
  }

  close(): void {
    this.client.close();
  }
}
