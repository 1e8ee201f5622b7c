/** The end of the load: what the suite waits for before it judges (scripts/chaos/README.md, "Drain"). */
import { log, sleep } from './common';
import type { LoadGenerator, SentMessage } from './load';

/**
 * Stops the load, waits for its requests, then for every acknowledged message (and every
 * occurrence `occurrences` expects until the load stopped) to arrive, or the drain deadline.
 */
export async function drain(
  loadGen: LoadGenerator,
  arrived: (message: SentMessage) => boolean,
  occurrences: (untilMs: number) => SentMessage[],
  settings: { giveUpMs: number; drainMs: number; abort: AbortSignal },
): Promise<void> {
  loadGen.stopGenerating();
  log(`load stopped; waiting for the ${loadGen.inFlight} message(s) still being sent`);
  if (!(await loadGen.settle(settings.giveUpMs + 10_000))) await loadGen.cancel();
  const acked = [
    ...[...loadGen.messages.values()].filter((m) => m.dueMs !== undefined),
    ...occurrences(loadGen.stoppedGeneratingAt ?? Date.now()),
  ];
  // A moved message may be due later than its POST said.
  const dueOf = (m: SentMessage): number =>
    Math.max(m.dueMs ?? 0, m.move?.dueMs ?? m.move?.requestedMs ?? 0);
  const lastDue = acked.reduce((max, m) => Math.max(max, dueOf(m)), Date.now());
  const deadline = lastDue + settings.drainMs;
  let outstanding = acked.filter((m) => !arrived(m));
  let lastLog = 0;
  while (outstanding.length > 0 && Date.now() < deadline) {
    if (Date.now() - lastLog > 5_000) {
      log(
        `waiting for ${outstanding.length} acknowledged message(s) to arrive (at most ${Math.ceil((deadline - Date.now()) / 1000)} s more)`,
      );
      lastLog = Date.now();
    }
    await sleep(250, settings.abort);
    outstanding = outstanding.filter((m) => !arrived(m));
  }
  // Duplicates produced late would still be on their way: a last short look.
  await sleep(2_000, settings.abort);
}
