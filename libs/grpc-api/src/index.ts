export {
  createGrpcServer,
  toGrpcStatus,
  MESSAGES_SERVICE,
  ERROR_CODE_KEY,
  ERROR_DETAILS_KEY,
  RETRY_AFTER_KEY,
} from './server';
export type { GrpcServer, GrpcServerOptions } from './server';
export { HEALTH_PROTO, MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from './proto';
export { toScheduleBody } from './translate';
export type { ScheduleRequestPb } from './translate';
export type { DebouncePb } from './debounce';
export { toUpdate } from './update';
export type { UpdateCall, UpdateRequestPb } from './update';
