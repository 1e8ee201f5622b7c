/**
 * chart.svg of one bench run (hand-drawn SVG: no charting dependency): lateness at the steady
 * rate and bulk scheduling throughput per system.
 */
import type { RunReport } from './report';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Two horizontal bar charts: lateness at the steady rate (p50 and p99, log scale: the systems
 * differ by orders of magnitude) and bulk scheduling throughput (linear).
 */
export function renderChart(report: RunReport): string {
  const rows = report.results.filter((r) => r.throughput || r.steady);
  const labelWidth = 330;
  const chartWidth = 420;
  const rowHeight = 34;
  const top = 70;
  const height = top + rows.length * rowHeight + 60;
  const width = labelWidth + chartWidth * 2 + 80;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  const steadyRate = rows.find((r) => r.steady)?.steady?.rate ?? 2000;
  out.push(
    `<text x="10" y="20" font-size="15" font-weight="bold">Hourglass bench (${report.mode}, ${escapeXml(report.startedAt)}, ${report.machine.cpus} cores)</text>`,
  );

  // Lateness panel (log10 scale from 1 ms to the largest p99).
  const x0 = labelWidth;
  const maxLate = Math.max(
    10,
    ...rows.map((r) => (r.steady ? r.steady.p99Ms : 0)).filter((v) => Number.isFinite(v)),
  );
  const logMax = Math.log10(maxLate * 1.2);
  const scaleLate = (ms: number): number =>
    (Math.max(0, Math.log10(Math.max(1, ms))) / logMax) * (chartWidth - 20);
  out.push(
    `<text x="${x0}" y="45" font-weight="bold">lateness at ${int.format(steadyRate)} msg/s (ms, log scale): p50 dark, p99 light</text>`,
  );
  // Throughput panel.
  const x1 = labelWidth + chartWidth + 40;
  const maxTp = Math.max(1, ...rows.map((r) => r.throughput?.bulkPerSec ?? 0));
  out.push(`<text x="${x1}" y="45" font-weight="bold">bulk scheduling (msg/s)</text>`);

  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    const hourglass = r.system === 'Hourglass';
    out.push(
      `<text x="10" y="${y + 16}"${hourglass ? ' font-weight="bold"' : ''}>${escapeXml(`${r.system} ${r.variant}`)}</text>`,
    );
    const s = r.steady;
    if (s && Number.isFinite(s.p99Ms)) {
      const p99w = scaleLate(s.p99Ms);
      const p50w = scaleLate(s.p50Ms);
      out.push(
        `<rect x="${x0}" y="${y + 2}" width="${p99w.toFixed(1)}" height="22" fill="${hourglass ? '#f5b971' : '#a9c4e8'}"/>`,
      );
      out.push(
        `<rect x="${x0}" y="${y + 7}" width="${p50w.toFixed(1)}" height="12" fill="${hourglass ? '#d9770b' : '#2f6db5'}"/>`,
      );
      const flag = s.complete ? '' : ' (incomplete)';
      out.push(
        `<text x="${x0 + p99w + 4}" y="${y + 17}">${int.format(s.p50Ms)} / ${int.format(s.p99Ms)}${flag}</text>`,
      );
    } else {
      out.push(`<text x="${x0}" y="${y + 17}" fill="#888">n/a</text>`);
    }
    const tp = r.throughput?.bulkPerSec;
    if (tp !== undefined) {
      const w = (tp / maxTp) * (chartWidth - 80);
      out.push(
        `<rect x="${x1}" y="${y + 4}" width="${w.toFixed(1)}" height="18" fill="${hourglass ? '#d9770b' : '#2f6db5'}"/>`,
      );
      out.push(`<text x="${x1 + w + 4}" y="${y + 17}">${int.format(tp)}</text>`);
    } else {
      out.push(`<text x="${x1}" y="${y + 17}" fill="#888">n/a</text>`);
    }
  });
  // Log axis ticks.
  const axisY = top + rows.length * rowHeight + 10;
  for (let decade = 1; decade <= maxLate * 1.2; decade *= 10) {
    const x = x0 + scaleLate(decade);
    out.push(`<line x1="${x}" y1="${top - 5}" x2="${x}" y2="${axisY}" stroke="#ddd"/>`);
    out.push(
      `<text x="${x}" y="${axisY + 14}" text-anchor="middle" fill="#555">${int.format(decade)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}
