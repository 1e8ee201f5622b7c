/**
 * Preloaded into the bench's Hourglass nodes (`node --expose-gc --require tsx/cjs --require
 * scripts/bench/gc-on-signal.ts apps/node/src/main.ts`). On SIGUSR2 it runs full garbage
 * collections and prints the process's memory right after them as one line on stderr, so the
 * memory scenario can report what the node really holds (V8 heap used + ArrayBuffers, where the
 * wheel's typed arrays live) apart from the garbage request handling leaves until V8 next
 * collects. Without the signal it does nothing; the node is otherwise the node as deployed.
 */

export {};

/** The line's prefix; scripts/bench/hourglass.ts looks for it. */
const MARKER = 'hourglass-bench-gc';

const gc = (globalThis as { gc?: () => void }).gc;
let reports = 0;
if (gc) {
  process.on('SIGUSR2', () => {
    // Twice: the first may only make objects with finalizers collectable.
    gc();
    gc();
    reports += 1;
    process.stderr.write(`${MARKER} ${reports} ${JSON.stringify(process.memoryUsage())}\n`);
  });
}
