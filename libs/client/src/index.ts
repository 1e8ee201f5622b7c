/**
 * @hourglass/client: the Hourglass SDK. {@link HourglassClient} schedules, reads and cancels
 * delayed messages over HTTP or gRPC; {@link handleDeliveries} and {@link decodeDelivery} read
 * the messages that fire from Kafka; {@link CallbackReceiver} receives the HTTP callbacks.
 * @packageDocumentation
 */
export { HourglassClient } from './client';
export type { HourglassClientOptions } from './client';
export {
  HourglassClientError,
  InvalidDeliveryError,
  SERVER_ERROR_CODES,
  RETRIABLE_SERVER_CODES,
} from './errors';
export type {
  ClientErrorCode,
  ErrorCode,
  ErrorDetail,
  HourglassClientErrorInit,
  ServerErrorCode,
} from './errors';
export type {
  BatchItemResult,
  CancelResult,
  Debounce,
  DebounceMode,
  Endpoint,
  Message,
  MessagePatch,
  MessageState,
  ScheduleMessage,
  ScheduleResult,
  Attempt,
  CallbackMethod,
  CallbackTarget,
  HttpTarget,
  KafkaTarget,
  RetryStrategy,
  RetryStrategyKind,
  Target,
  TargetState,
  TargetStatus,
  UpdateOptions,
} from './types';
export { RecentIds, decodeDelivery, handleDeliveries } from './consumer';
export type { Delivery, DeliveryHandlerOptions, KafkaRecord, KafkaRecordContext } from './consumer';
export { uuidv7 } from './uuid';
export { CallbackReceiver } from './receiver';
export type { CallbackEnvelope, CallbackMessage } from './callback-message';
export type {
  CallbackHandler,
  ExpressHandler,
  ReceiverOptions,
  Refusal,
  RefusalCode,
} from './receiver';
export { VerificationError, verifySignature } from './signature';
export type {
  HeadersLike,
  VerificationErrorCode,
  VerifiedSignature,
  VerifySignatureOptions,
} from './signature';
