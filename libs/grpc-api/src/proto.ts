/**
 * Where the .proto contract lives at run time. The files are read when a server starts (not
 * compiled into code), so the proto folder must ship next to whatever runs: the package itself
 * (`libs/grpc-api/proto`, found from `src/` as `../proto`), or the repository checkout when
 * apps/node is bundled into apps/node/dist/main.js (found by searching upward for
 * `libs/grpc-api/proto`).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Options } from '@grpc/proto-loader';

/** The Messages contract, relative to the proto folder. */
export const MESSAGES_PROTO = 'hourglass/v1/messages.proto';
/** The standard health contract, relative to the proto folder. */
export const HEALTH_PROTO = 'grpc/health/v1/health.proto';

/**
 * Decoding options shared by the server and the SDK: camelCase fields, int64 as JS numbers (epoch
 * milliseconds and delays fit; larger values fail validation as unsafe integers), enums as names,
 * and unset fields left out so "absent" and "empty" stay distinguishable for `optional` fields.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: false,
};

function candidates(): string[] {
  const found = [resolve(__dirname, '../proto')];
  for (const start of [__dirname, process.cwd()]) {
    for (let dir = resolve(start); ; dir = dirname(dir)) {
      found.push(join(dir, 'libs', 'grpc-api', 'proto'));
      if (dirname(dir) === dir) break;
    }
  }
  return found;
}

let cached: string | undefined;

/** The folder holding {@link MESSAGES_PROTO} and {@link HEALTH_PROTO}; throws naming where it looked. */
export function protoDir(): string {
  if (cached) return cached;
  const searched = candidates();
  const dir = searched.find((candidate) => existsSync(join(candidate, MESSAGES_PROTO)));
  if (!dir) throw new Error(`cannot find ${MESSAGES_PROTO}; searched: ${searched.join(', ')}`);
  cached = dir;
  return dir;
}
