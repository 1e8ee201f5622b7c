/**
 * `new Date(ms).toISOString()`, the same string, several times faster for the common case.
 *
 * A batch response formats two instants per message (due and created), and `toISOString` was a
 * visible share of the accept path's CPU. The date part ("2030-01-01T") is cached per day in a
 * small direct-mapped cache (four entries, so a batch alternating between "today" and "due
 * tomorrow" does not thrash it); the time of day is plain arithmetic, and the whole string is
 * made by one `String.fromCharCode` call (one flat string, no intermediate pieces). The last two
 * results are kept too: a batch's created rows all share one createdAt. Instants outside years
 * 1970–9999 and non-integers go to `toISOString` itself (which also keeps its RangeError for
 * NaN and out-of-range values).
 */
const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00Z: from here on toISOString writes an expanded (+YYYYYY) year. */
const YEAR_10000_MS = 253_402_300_800_000;
const ZERO = 48;
const cachedDays = [Number.NaN, Number.NaN, Number.NaN, Number.NaN];
/** Per cache entry: the character codes of "YYYY-MM-DDT" followed by room for "HH:MM:SS.mmmZ". */
const cachedCodes = cachedDays.map(() => new Array<number>(24).fill(ZERO));

/** The last two instants formatted; the least recently used one goes. */
let recentMs = Number.NaN;
let recentText = '';
let olderMs = Number.NaN;
let olderText = '';

export function isoTime(ms: number): string {
  if (ms === recentMs) return recentText;
  if (ms === olderMs) {
    olderMs = recentMs;
    recentMs = ms;
    const text = olderText;
    olderText = recentText;
    recentText = text;
    return text;
  }
  if (!Number.isInteger(ms) || ms < 0 || ms >= YEAR_10000_MS) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  const entry = day & 3;
  const codes = cachedCodes[entry]!;
  if (cachedDays[entry] !== day) {
    const prefix = new Date(day * DAY_MS).toISOString();
    for (let i = 0; i < 11; i++) codes[i] = prefix.charCodeAt(i);
    codes[13] = codes[16] = 58; // ':'
    codes[19] = 46; // '.'
    codes[23] = 90; // 'Z'
    cachedDays[entry] = day;
  }
  let rest = ms - day * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  const minute = rest % 60;
  const hour = (rest - minute) / 60;
  codes[11] = ZERO + Math.floor(hour / 10);
  codes[12] = ZERO + (hour % 10);
  codes[14] = ZERO + Math.floor(minute / 10);
  codes[15] = ZERO + (minute % 10);
  codes[17] = ZERO + Math.floor(second / 10);
  codes[18] = ZERO + (second % 10);
  codes[20] = ZERO + Math.floor(milli / 100);
  codes[21] = ZERO + (Math.floor(milli / 10) % 10);
  codes[22] = ZERO + (milli % 10);
  olderMs = recentMs;
  olderText = recentText;
  recentMs = ms;
  const c = codes; // explicit arguments: a spread would copy the array per call
  recentText = String.fromCharCode(
    c[0]!,
    c[1]!,
    c[2]!,
    c[3]!,
    c[4]!,
    c[5]!,
    c[6]!,
    c[7]!,
    c[8]!,
    c[9]!,
    c[10]!,
    c[11]!,
    c[12]!,
    c[13]!,
    c[14]!,
    c[15]!,
    c[16]!,
    c[17]!,
    c[18]!,
    c[19]!,
    c[20]!,
    c[21]!,
    c[22]!,
    c[23]!,
  );
  return recentText;
}
