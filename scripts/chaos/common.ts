/** Small helpers shared by the chaos suite's modules: progress lines, abortable sleeps, timeouts. */

const startedAt = Date.now();

/** A progress line on stderr, stamped with the seconds since the suite started. */
export function log(message: string): void {
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`chaos [${seconds}s] ${message}\n`);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Thrown by {@link sleep} (and checked for by callers) once the run is being aborted. */
export class AbortedError extends Error {
  constructor(reason = 'aborted') {
    super(reason);
    this.name = 'AbortedError';
  }
}

/** Resolves after `ms`; rejects with {@link AbortedError} as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// The bench's bounded(): a rejection naming what took too long.
export { bounded } from '../bench/common';

/** Error raised when the suite cannot set itself up (a node or a service would not start). */
export class SetupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SetupError';
  }
}
