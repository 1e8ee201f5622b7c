/**
 * Rules for client input that every transport and the admin side share: Kafka's topic-name rules,
 * text that cannot be stored as sent, and how deeply a JSON value may nest. Pure: no I/O.
 *
 * The depth checks never recurse, so they are safe on any input. A value nested thousands of
 * levels deep overflows the stack of `JSON.stringify` (and of any recursive walk): bodies and
 * payloads are measured with these first, and refused above the limit.
 */

/** Kafka's topic-name rule: 1-249 characters of A-Z a-z 0-9 . _ - (and not `.` or `..`). */
export const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;
export const TOPIC_RULE = '1-249 characters of A-Z a-z 0-9 . _ - (and not "." or "..")';

/** Partitions a topic created through the admin API may have by default (`limits.maxTopicPartitions`). */
export const DEFAULT_MAX_TOPIC_PARTITIONS = 64;
/** The most the configuration allows for `limits.maxTopicPartitions` (and the OpenAPI maximum). */
export const MAX_TOPIC_PARTITIONS_CEILING = 10_000;

/** How deeply a JSON payload may nest by default (`limits.maxPayloadDepth`). */
export const DEFAULT_MAX_PAYLOAD_DEPTH = 64;
/** The most the configuration allows for `limits.maxPayloadDepth`: well inside any stack. */
export const MAX_PAYLOAD_DEPTH_CEILING = 1000;
/**
 * Levels a request body may nest beyond `maxPayloadDepth`: the envelope of a batch
 * (`{"messages": [{"payload": …}]}` is three) plus room, so a payload a little too deep is refused
 * as that one message (`messages/3/payload`) rather than as the whole body.
 */
export const BODY_DEPTH_ALLOWANCE = 16;

/** Why `name` is not a valid Kafka topic name, or null when it is one. */
export function topicNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'must be a string';
  if (!TOPIC_PATTERN.test(name) || name === '.' || name === '..') return `must be ${TOPIC_RULE}`;
  return null;
}

export function isTopicName(name: unknown): name is string {
  return topicNameProblem(name) === null;
}

/**
 * Kafka treats `.` and `_` in topic names as the same character in metric names, and refuses a
 * topic whose name differs from an existing one only by those ("collides with existing topics").
 * Two names collide when their keys are equal.
 */
export function topicCollisionKey(name: string): string {
  return name.replaceAll('.', '_');
}

/**
 * A lone UTF-16 surrogate has no UTF-8 form: it would be stored, and sent to Kafka, as U+FFFD. In
 * `u` mode a surrogate pair is one code point outside this class, so only lone ones match.
 */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * Why `text` cannot be stored as sent, or null when it can: Postgres text refuses U+0000 (the
 * whole statement would fail), and lone surrogates would be replaced.
 */
export function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (no lone surrogate)';
  return null;
}

/**
 * Whether a parsed JSON value nests more than `max` levels: `1` and `"x"` are depth 0, `[]` and
 * `{}` depth 1, `{"a": [1]}` depth 2. Iterative, and it stops at the first container too deep.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max < 1) return true;
  // Containers still to look into, each with its own depth (parallel stacks: no object per item).
  const stack: object[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const container = stack.pop() as Record<string, unknown> | unknown[];
    const depth = depths.pop() as number;
    if (Array.isArray(container)) {
      for (const item of container) {
        if (typeof item !== 'object' || item === null) continue;
        if (depth + 1 > max) return true;
        stack.push(item);
        depths.push(depth + 1);
      }
    } else {
      for (const key in container) {
        const item = container[key];
        if (typeof item !== 'object' || item === null) continue;
        if (depth + 1 > max) return true;
        stack.push(item);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether JSON text nests more than `max` levels, measured on the text before it is parsed (so a
 * body nested millions of levels deep costs one pass over its bytes, not a parse). Brackets inside
 * strings do not count. The text need not be valid JSON: the parser reports that afterwards.
 */
export function jsonTextDepthExceeds(text: Uint8Array | string, max: number): boolean {
  // Over UTF-8 bytes: every byte of a multi-byte sequence is >= 0x80, so none of them is mistaken
  // for a quote, a backslash or a bracket.
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return false;
}
