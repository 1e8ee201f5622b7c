/**
 * One-dimensional arrays in Postgres's binary wire format, for the parameters of bulk statements.
 *
 * node-postgres sends a `Buffer` parameter in binary format and everything else as text; a JS
 * array becomes a text literal (`{"a","b"}`) built element by element with two regex escapes
 * each, and a `bytea` element becomes `\\x` + hex. For the insert's ten arrays of 1000 elements
 * that was a measurable share of the node's CPU, and Postgres then parsed the literals back
 * (`array_in`, hex decoding). Binary arrays are a length-prefixed copy of each element, which
 * `array_recv` reads without parsing. The statement stays the same: `$1::text[]` types the
 * parameter, and the server reads a binary value of that type.
 *
 * Format (array_send/array_recv): int32 ndim, int32 has-nulls flag, uint32 element type oid,
 * then per dimension int32 length and int32 lower bound (1), then per element int32 byte length
 * (-1 for NULL) and the element's binary form: text is its UTF-8 bytes, bytea its bytes, int2/4/8
 * big-endian two's complement. The element oid must be the parameter's element type exactly.
 */

const OID = { bytea: 17, int8: 20, int2: 21, int4: 23, text: 25 } as const;
type ElementType = keyof typeof OID;

/** Appends to a buffer that grows by doubling; {@link finish} returns the bytes written. */
class Writer {
  private buffer: Buffer;
  private offset = 0;

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.offset + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  int32(value: number): void {
    this.reserve(4);
    this.buffer.writeInt32BE(value, this.offset);
    this.offset += 4;
  }

  header(type: ElementType, length: number, hasNulls: boolean): void {
    if (length === 0) {
      // ndim 0 is how Postgres itself sends an empty array.
      this.int32(0);
      this.int32(0);
      this.int32(OID[type]);
      return;
    }
    this.int32(1);
    this.int32(hasNulls ? 1 : 0);
    this.int32(OID[type]);
    this.int32(length);
    this.int32(1);
  }

  /** Length prefix + UTF-8 bytes (lone surrogates become U+FFFD, as in node-postgres's text mode). */
  text(value: string): void {
    // At most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units).
    this.reserve(4 + value.length * 3);
    const written = this.buffer.write(value, this.offset + 4, 'utf8');
    this.buffer.writeInt32BE(written, this.offset);
    this.offset += 4 + written;
  }

  bytes(value: Buffer): void {
    this.reserve(4 + value.length);
    this.buffer.writeInt32BE(value.length, this.offset);
    value.copy(this.buffer, this.offset + 4);
    this.offset += 4 + value.length;
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }
}

function integer(value: number, min: number, max: number, type: string): number {
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new RangeError(`${value} is not a valid ${type}`);
  return value;
}

/**
 * The common case without a native call per element: ASCII strings (ids, topics, fingerprints),
 * copied character by character (an ASCII character is its own UTF-8 byte). Gives up (undefined)
 * at the first character above 0x7f; the caller then encodes every element as UTF-8.
 */
function asciiTextArray(values: readonly (string | null)[]): Buffer | undefined {
  let chars = 0;
  let hasNulls = false;
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    if (value === null) hasNulls = true;
    else chars += value.length;
  }
  const writer = new Writer(20);
  writer.header('text', values.length, hasNulls);
  const header = writer.finish();
  const out = Buffer.allocUnsafe(header.length + values.length * 4 + chars);
  header.copy(out);
  let offset = header.length;
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    if (value === null) {
      out.writeInt32BE(-1, offset);
      offset += 4;
      continue;
    }
    const length = value.length;
    out.writeInt32BE(length, offset);
    offset += 4;
    for (let i = 0; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) return undefined;
      out[offset++] = code;
    }
  }
  return out;
}

/** `text[]`; null elements allowed. */
export function textArray(values: readonly (string | null)[]): Buffer {
  const ascii = asciiTextArray(values);
  if (ascii) return ascii;
  let chars = 0;
  let hasNulls = false;
  for (const value of values) {
    if (value === null) hasNulls = true;
    else chars += value.length;
  }
  const writer = new Writer(20 + values.length * 4 + chars + (chars >> 2));
  writer.header('text', values.length, hasNulls);
  for (const value of values) {
    if (value === null) writer.int32(-1);
    else writer.text(value);
  }
  return writer.finish();
}

/** `bytea[]`. */
export function byteaArray(values: readonly Buffer[]): Buffer {
  let bytes = 0;
  for (let index = 0; index < values.length; index++) bytes += values[index]!.length;
  const writer = new Writer(20 + values.length * 4 + bytes);
  writer.header('bytea', values.length, false);
  for (let index = 0; index < values.length; index++) writer.bytes(values[index]!);
  return writer.finish();
}

/** `int2[]`, `int4[]` or `int8[]` (int8 limited to JS safe integers). */
export function integerArray(type: 'int2' | 'int4' | 'int8', values: readonly number[]): Buffer {
  const width = type === 'int2' ? 2 : type === 'int4' ? 4 : 8;
  const writer = new Writer(20);
  writer.header(type, values.length, false);
  const header = writer.finish();
  const out = Buffer.allocUnsafe(header.length + values.length * (4 + width));
  header.copy(out);
  let offset = header.length;
  // Indexed loops here and below: for…of allocated an iterator result per element.
  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    out.writeInt32BE(width, offset);
    offset += 4;
    if (type === 'int2') {
      out.writeInt16BE(integer(value, -32_768, 32_767, type), offset);
    } else if (type === 'int4') {
      out.writeInt32BE(integer(value, -2_147_483_648, 2_147_483_647, type), offset);
    } else {
      const exact = integer(value, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, type);
      // Two's complement over two 32-bit halves; floor keeps the high half right for negatives.
      const high = Math.floor(exact / 4_294_967_296);
      out.writeInt32BE(high, offset);
      out.writeUInt32BE(exact - high * 4_294_967_296, offset + 4);
    }
    offset += width;
  }
  return out;
}
