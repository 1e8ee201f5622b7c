#!/usr/bin/env node
// Restores the lockfile entries of platform-specific optional packages that `npm install` leaves
// out when the registry it talks to has no copy of them (this machine's mirror carries only the
// Linux builds of @msgpackr-extract/*). Without the entries `npm ci` refuses the lockfile as out
// of sync with package.json. The entries name os/cpu, so npm never fetches them on this machine,
// and on a machine that does need one it resolves from its own registry.
//
//   node scripts/lockfile-platforms.mjs    (run after any `npm install` that rewrote the lockfile)
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const platformOf = (name) => {
  const match = /-(darwin|linux|win32|freebsd)-(arm64|x64|arm|ia32)$/.exec(name);
  return match ? { os: match[1], cpu: match[2] } : undefined;
};

let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const platform = platformOf(name);
    const key = `node_modules/${name}`;
    if (!platform || lock.packages[key]) continue;
    lock.packages[key] = {
      version,
      cpu: [platform.cpu],
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      os: [platform.os],
    };
    added += 1;
    console.log(`lockfile: added ${key}@${version} (needed by ${path || 'the root'})`);
  }
}
const sorted = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) =>
    a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0,
  ),
);
lock.packages = sorted;
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lockfile: ${added} platform entr${added === 1 ? 'y' : 'ies'} added`);
