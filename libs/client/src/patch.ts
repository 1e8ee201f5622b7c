/**
 * The transport-neutral form of {@link HourglassClient.update}'s arguments, prepared once before
 * the first attempt (like {@link prepareMessage}), so every retry sends the same change.
 */
import { HourglassClientError } from './errors';
import type { MessagePatch, UpdateOptions } from './types';
import type { WireContent } from './wire';
import { prepareContent } from './wire';

/** A patch's fields as both transports send them; `key: null` removes the key. */
export interface WirePatch extends Omit<WireContent, 'key'> {
  readonly key?: string | null;
}

/** The largest version gRPC can carry (`uint32 if_version`). */
const MAX_VERSION = 0xffff_ffff;

function refused(transport: 'http' | 'grpc', path: string, message: string): HourglassClientError {
  return new HourglassClientError({
    code: 'invalid_request',
    message: `invalid patch: ${path}: ${message}`,
    transport,
    retriable: false,
    details: [{ path, message }],
  });
}

/**
 * Checks what one of the transports could not express (both `payload` and `payloadBytes`, both
 * `deliverAt` and `delayMs`, a target of no known kind), so both refuse it alike; the server
 * validates the merged message.
 */
export function preparePatch(patch: MessagePatch, transport: 'http' | 'grpc'): WirePatch {
  // A JS caller may pass anything; checked through `given` so `patch` keeps its type.
  const given: unknown = patch;
  if (typeof given !== 'object' || given === null || Array.isArray(given))
    throw refused(transport, '/', 'expected an object of the fields to change');
  const content = prepareContent(patch, transport, '', 'patch');
  // For a new message a null key is no key (left out); in a patch it removes the stored one.
  return patch.key === null ? { ...content, key: null } : content;
}

/** `ifVersion` checked: undefined (unconditional) or a version a message can have. */
export function prepareIfVersion(
  options: UpdateOptions,
  transport: 'http' | 'grpc',
): number | undefined {
  const version = options.ifVersion;
  if (version === undefined) return undefined;
  if (!Number.isInteger(version) || version < 1 || version > MAX_VERSION)
    throw refused(transport, 'ifVersion', 'must be a message version (an integer from 1)');
  return version;
}
