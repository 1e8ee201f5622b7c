/** Plain-text tables for humans; scripts use --json. Pure: strings in, a string out. */

export interface Column<T> {
  readonly header: string;
  readonly value: (row: T) => unknown;
  /** Right-align (numbers). */
  readonly right?: boolean;
}

export function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map(cell).join(',');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value) ?? '-';
}

/** Columns padded to their widest cell, two spaces apart, no trailing spaces. */
export function renderTable<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  const cells = rows.map((row) =>
    columns.map((column) => cell(column.value(row)).replace(/\s+/g, ' ')),
  );
  const widths = columns.map((column, i) =>
    Math.max(column.header.length, ...cells.map((line) => line[i]!.length)),
  );
  const format = (line: readonly string[]): string =>
    line
      .map((text, i) => (columns[i]!.right ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [format(columns.map((column) => column.header)), ...cells.map(format)].join('\n') + '\n';
}

/** `key: value` lines for one object. */
export function renderRecord(entries: ReadonlyArray<readonly [string, unknown]>): string {
  const width = Math.max(...entries.map(([key]) => key.length));
  return (
    entries.map(([key, value]) => `${`${key}:`.padEnd(width + 1)}  ${cell(value)}`).join('\n') +
    '\n'
  );
}
