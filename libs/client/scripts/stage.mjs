// Stages the publishable package in libs/client/.publish/ (run through `npm run stage`, after the
// build): dist/, a copy of the .proto contract, the README, and a manifest with publishConfig's
// fields applied. `npm publish libs/client/.publish` then ships exactly that.
//
// Why a staged copy: inside the monorepo `exports` points at src/ (the workspace runs TypeScript
// directly); published, it must point at dist/. pnpm and yarn apply `publishConfig.exports` when
// publishing, npm does not, so this script does what they do for any package manager. The
// .proto files are copied from libs/grpc-api/proto, the one source of the contract, instead of
// being kept twice in git.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(here, '../..');
const out = join(here, '.publish');
const manifest = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
const rootManifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));

if (!existsSync(join(here, 'dist/index.js')))
  throw new Error('dist/ is missing: run `npm run build` first');

// Runtime dependencies: the package's own when declared, else the versions the monorepo is
// tested with (the workspace resolves them from the root).
const runtime = ['@grpc/grpc-js', '@grpc/proto-loader'];
const dependencies = { ...(manifest.dependencies ?? {}) };
for (const name of runtime) {
  dependencies[name] ??= rootManifest.dependencies?.[name];
  if (!dependencies[name])
    throw new Error(`no version for ${name} in libs/client or the root package.json`);
}

const {
  publishConfig = {},
  scripts: _scripts,
  devDependencies: _dev,
  private: _private,
  ...rest
} = manifest;
const { access, registry, tag, ...overrides } = publishConfig;
const published = {
  ...rest,
  ...overrides,
  dependencies,
  ...(access || registry || tag ? { publishConfig: { access, registry, tag } } : {}),
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
cpSync(join(here, 'dist'), join(out, 'dist'), { recursive: true });
cpSync(join(repo, 'libs/grpc-api/proto'), join(out, 'proto'), { recursive: true });
cpSync(join(here, 'README.md'), join(out, 'README.md'));
writeFileSync(join(out, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
console.log(`staged ${published.name}@${published.version} in ${out}`);
