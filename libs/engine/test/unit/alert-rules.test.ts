/**
 * deploy/prometheus/hourglass-alerts.yaml names only metrics a node exports: every metric in an
 * alert expression is one EngineMetrics registers (histogram series by their `_bucket` name).
 * promtool checks the syntax when it is installed; this keeps the names from drifting.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { EngineMetrics } from '../../src';

interface Rules {
  groups: Array<{
    name: string;
    rules: Array<{ alert: string; expr: string; labels?: { severity?: string } }>;
  }>;
}

describe('Prometheus alert rules (deploy/prometheus)', () => {
  const file = resolve(__dirname, '../../../../deploy/prometheus/hourglass-alerts.yaml');
  const rules = parse(readFileSync(file, 'utf8')) as Rules;

  it('name only metrics the node exports, and give every alert a severity', async () => {
    const metrics = new EngineMetrics();
    const exported = new Set<string>();
    for (const metric of await metrics.registry.getMetricsAsJSON()) {
      exported.add(metric.name);
      if (String(metric.type) === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${metric.name}${suffix}`);
    }
    const alerts = rules.groups.flatMap((group) => group.rules);
    assert.ok(alerts.length >= 5);
    for (const rule of alerts) {
      assert.ok(
        ['warning', 'critical'].includes(rule.labels?.severity ?? ''),
        `${rule.alert}: severity`,
      );
      const names = rule.expr.match(/hourglass_[a-z_]+/g) ?? [];
      assert.ok(names.length > 0, `${rule.alert} names no Hourglass metric`);
      for (const name of names)
        assert.ok(exported.has(name), `${rule.alert}: ${name} is not exported`);
    }
  });
});
