/**
 * Where the hourglass.v1 .proto files are at run time. The published package carries a copy in
 * `proto/` (made by `scripts/copy-proto.mjs` when building, from libs/grpc-api/proto, the one
 * source of truth); inside the monorepo, where no copy is made, the grpc-api package's folder is
 * used. Both are found relative to this module, which sits one level below the package root in
 * `src/` and in `dist/` alike.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const MESSAGES_PROTO = 'hourglass/v1/messages.proto';

export function findProtoDir(): string {
  const candidates = [resolve(__dirname, '../proto'), resolve(__dirname, '../../grpc-api/proto')];
  const found = candidates.find((dir) => existsSync(join(dir, MESSAGES_PROTO)));
  if (!found) {
    throw new Error(
      `@hourglass/client: cannot find ${MESSAGES_PROTO} (searched ${candidates.join(', ')}); pass the protoDir option`,
    );
  }
  return found;
}
