/**
 * `node apps/node/dist/main.js` (or `tsx apps/node/src/main.ts`): one Hourglass node.
 * Config comes from config/default.yaml, $HOURGLASS_CONFIG files and HOURGLASS__* variables.
 */
import { ConfigError, loadConfig } from '@hourglass/config';
import pino from 'pino';
import { DependencyUnavailableError } from '@hourglass/core';
import { SchemaError } from '@hourglass/postgres';
import { ListenError, startNode } from './node';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hourglass: ${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = pino({ level: config.log.level, base: { node: config.node.id || undefined } });
  const node = await startNode(config, logger);
  let signals = 0;
  const shutdown = (signal: string): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    logger.info({ signal }, 'stopping');
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/**
 * What to print when the start fails: errors that explain themselves (a taken port, a schema this
 * version cannot use, an unreachable dependency) without a stack trace, anything else with one.
 */
function describeStartFailure(error: unknown): string {
  if (error instanceof ListenError || error instanceof SchemaError) return error.message;
  if (error instanceof DependencyUnavailableError) {
    const cause = error.cause instanceof Error ? error.cause.message : String(error.cause);
    return `${error.dependency} is unreachable (${cause}): check that it runs at the configured address`;
  }
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

main().catch((error: unknown) => {
  process.stderr.write(`hourglass: failed to start: ${describeStartFailure(error)}\n`);
  process.exit(1);
});
