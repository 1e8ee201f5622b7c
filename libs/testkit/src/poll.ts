/**
 * Calls `read` until `done` holds for its result or `timeoutMs` passes, for state that nothing
 * signals (a message's state in Postgres after its callback was answered, say). Returns the last
 * result; the caller asserts on it. Where an event can be awaited, await it instead.
 */
export async function pollUntil<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    value = await read();
  }
  return value;
}
