/**
 * Child-process fixture for startup.test.ts: runs startNode once per config in $HG_START_ATTEMPTS
 * (a JSON array of config overrides, layered like harness.testConfig), one after the other in
 * this one process, and prints one JSON line per attempt:
 *
 *   {"attempt": 0, "ok": false, "name": "ListenError", "message": "..."}
 *   {"attempt": 1, "ok": true, "httpUrl": "http://127.0.0.1:40123"}   (then stopped at once)
 *
 * It never calls process.exit: the process ends only when nothing is left open, which is what the
 * test checks. Should something stay open, an unref'd timer prints what, to help find the leak.
 */
import pino from 'pino';
import { startNode } from '../../src/node';
import { testConfig } from './harness';
import type { ConfigOverrides } from './harness';

async function main(): Promise<void> {
  const attempts = JSON.parse(process.env.HG_START_ATTEMPTS ?? '[]') as ConfigOverrides[];
  for (const [attempt, overrides] of attempts.entries()) {
    const config = testConfig(overrides);
    const started = Date.now();
    try {
      const node = await startNode(config, pino({ level: config.log.level }));
      process.stdout.write(
        `${JSON.stringify({ attempt, ok: true, httpUrl: node.httpUrl, ms: Date.now() - started })}\n`,
      );
      await node.stop();
    } catch (error) {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      process.stdout.write(
        `${JSON.stringify({ attempt, ok: false, name, message, ms: Date.now() - started })}\n`,
      );
    }
  }
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ stillOpen: process.getActiveResourcesInfo() })}\n`);
  }, 5_000).unref();
}

void main();
