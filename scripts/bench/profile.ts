/**
 * Reads the V8 CPU profiles (`node --cpu-prof`) the Hourglass nodes wrote during a `--profile`
 * run and lists the top self-time functions and packages. Also runnable on its own:
 *
 *   node --require tsx/cjs scripts/bench/profile.ts bench-results/<run>/profiles
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** `libs/engine`, `node_modules/kafkajs`, `node:internal`, … : where a frame's code lives. */
function origin(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] ?? url;
  const lib = /\/(libs|apps)\/([^/]+)\//.exec(url);
  if (lib) return `${lib[1]}/${lib[2]}`;
  if (url.startsWith('node:')) return 'node (built-in)';
  return url;
}

export function summarizeProfiles(dir: string, top = 25): string {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return `no profiles in ${dir}`;
  }
  const out: string[] = [];
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const totalSamples = profile.nodes.reduce((sum, n) => sum + (n.hitCount ?? 0), 0);
    const msPerSample =
      totalSamples > 0 ? (profile.endTime - profile.startTime) / 1000 / totalSamples : 0;
    const byFunction = new Map<string, number>();
    const byOrigin = new Map<string, number>();
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      if (hits === 0) continue;
      if (node.callFrame.functionName === '(idle)') {
        byFunction.set('(idle)', (byFunction.get('(idle)') ?? 0) + hits);
        continue;
      }
      const { functionName, url, lineNumber } = node.callFrame;
      const name = `${functionName || '(anonymous)'}  ${url.replace(/^.*\/(node_modules|libs|apps)\//, '$1/')}:${lineNumber + 1}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
      const o = origin(url);
      byOrigin.set(o, (byOrigin.get(o) ?? 0) + hits);
    }
    const idle = [...byFunction]
      .filter(([k]) => k.startsWith('(idle)'))
      .reduce((s, [, v]) => s + v, 0);
    const busy = totalSamples - idle;
    const pct = (hits: number): string =>
      `${((hits / Math.max(1, busy)) * 100).toFixed(1).padStart(5)}%`;
    out.push(
      `## ${file}: ${((busy * msPerSample) / 1000).toFixed(1)} s busy of ${((totalSamples * msPerSample) / 1000).toFixed(1)} s`,
    );
    out.push('top self time by package (share of busy time):');
    for (const [name, hits] of [...byOrigin].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      out.push(`  ${pct(hits)}  ${name}`);
    }
    out.push('top self time by function:');
    for (const [name, hits] of [...byFunction]
      .filter(([k]) => !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)) {
      out.push(`  ${pct(hits)}  ${name}`);
    }
    out.push('');
  }
  return out.join('\n');
}

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: profile.ts <folder with .cpuprofile files>\n');
    process.exit(2);
  }
  process.stdout.write(`${summarizeProfiles(dir)}\n`);
}
