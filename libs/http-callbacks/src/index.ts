/**
 * HTTP callbacks: the {@link HttpCaller} port implemented with undici, behind the SSRF guard and
 * per-host and per-app bounds. See caller.ts for the isolation and timing guarantees.
 */
export { UndiciHttpCaller } from './caller';
export type { HttpCallerOptions } from './caller';
