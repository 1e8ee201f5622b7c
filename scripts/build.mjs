// Bundles the deployable apps into single files under apps/*/dist. Dependencies stay external
// (installed from package-lock.json); only our workspace packages are inlined.
import { build } from 'esbuild';
import { resolve } from 'node:path';

const entries = [
  { in: 'apps/node/src/main.ts', out: 'apps/node/dist/main.js' },
  { in: 'apps/node/src/local-cluster.ts', out: 'apps/node/dist/local-cluster.js', optional: true },
  { in: 'apps/cli/src/main.ts', out: 'apps/cli/dist/main.js', optional: true },
];
const { existsSync } = await import('node:fs');
for (const entry of entries) {
  if (entry.optional && !existsSync(entry.in)) continue;
  await build({
    entryPoints: [entry.in],
    outfile: entry.out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    packages: 'external',
    // Workspace packages resolve to their TypeScript sources and are bundled in.
    plugins: [
      {
        name: 'bundle-workspace',
        setup(b) {
          b.onResolve({ filter: /^@hourglass\/[a-z-]+$/ }, (args) => ({
            path: resolve('libs', args.path.slice('@hourglass/'.length), 'src/index.ts'),
          }));
        },
      },
    ],
    external: ['pg-native'],
    logLevel: 'warning',
  });
  console.log(`built ${entry.out}`);
}
