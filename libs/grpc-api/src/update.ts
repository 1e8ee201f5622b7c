/**
 * Translation of `hourglass.v1.UpdateRequest` into what `MessageService.update` takes: the HTTP
 * PATCH body, field for field, and the If-Match versions. The fields an update shares with a
 * schedule request go through {@link toScheduleBody}, so payload_json, due times, targets and retry
 * reach the merge and the validator exactly as they do for Schedule (and as over HTTP).
 */
import { DEFAULT_MAX_PAYLOAD_DEPTH, HourglassError } from '@hourglass/core';
import type { ScheduleRequestPb } from './translate';
import { toScheduleBody } from './translate';

/** `hourglass.v1.UpdateRequest` as decoded (unset fields absent, oneofs as their set member). */
export interface UpdateRequestPb extends Omit<ScheduleRequestPb, 'id' | 'headers'> {
  id?: string;
  ifVersion?: number;
  /** A wrapper: present (even empty) replaces the headers; absent keeps them. */
  headers?: { entries?: Record<string, string> } | null;
  clearKey?: boolean;
}

/** What {@link toUpdate} gives: the arguments of `MessageService.update` after the app. */
export interface UpdateCall {
  readonly id: string;
  /** The PATCH /v1/messages/{id} JSON body. */
  readonly patch: Record<string, unknown>;
  /** null: unconditional; else the one version the caller allows (HTTP `If-Match: "<n>"`). */
  readonly ifMatch: readonly number[] | null;
}

/**
 * The service call for one request. Throws `invalid_request` for an `if_version` of 0 (versions
 * start at 1, so it could never match) and, as {@link toScheduleBody} does, for a `payload_json`
 * that is not JSON or nests too deep. Everything else is left to the service's validation.
 */
export function toUpdate(
  request: UpdateRequestPb,
  maxPayloadDepth = DEFAULT_MAX_PAYLOAD_DEPTH,
): UpdateCall {
  const { id, ifVersion, headers, clearKey, ...shared } = request;
  if (ifVersion === 0)
    throw new HourglassError(
      'invalid_request',
      'if_version must be a version as a message reports it (1 or more)',
      [{ path: 'If-Match', message: 'versions start at 1' }],
    );
  // No `id`: a patch naming one is refused, and the id travels beside the patch.
  const patch = toScheduleBody(shared, '', maxPayloadDepth);
  // Present but empty is "remove every header" here, unlike a schedule's map (absent = empty).
  if (headers) patch.headers = { ...(headers.entries ?? {}) };
  if (clearKey === true && shared.key === undefined) patch.key = null;
  return { id: id ?? '', patch, ifMatch: ifVersion === undefined ? null : [ifVersion] };
}
