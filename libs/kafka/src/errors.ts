/** Mapping kafkajs errors to {@link PublishError}: the one place that decides what is transient. */
import { PublishError } from '@hourglass/core';

/** kafkajs marks transient protocol and network errors `retriable`; anything else counts toward giving up. */
export function toPublishError(error: unknown): PublishError {
  if (error instanceof PublishError) return error;
  const err = error as {
    name?: string;
    message?: string;
    retriable?: boolean;
    cause?: unknown;
    originalError?: unknown;
  };
  const name = err.name ?? 'Error';
  // Retries exhausted wraps the last error; the connection-level ones are transient by nature.
  const inner = (err.originalError ?? err.cause) as
    { retriable?: boolean; name?: string } | undefined;
  const text = `${name} ${inner?.name ?? ''} ${err.message ?? ''}`;
  // A missing topic is "retriable" to Kafka (it may be being created), but a topic that stays
  // missing must end in `failed` rather than retry forever, so it counts toward giving up.
  if (/does not host this topic|UNKNOWN_TOPIC/i.test(text)) {
    return new PublishError(`${name}: ${err.message ?? String(error)}`, false, { cause: error });
  }
  const transient =
    err.retriable === true ||
    inner?.retriable === true ||
    /Connection|Network|Timeout|NotLeader|LeaderNotAvailable|BrokerNotFound|NotCoordinator/i.test(
      text,
    );
  return new PublishError(`${name}: ${err.message ?? String(error)}`, transient, { cause: error });
}
