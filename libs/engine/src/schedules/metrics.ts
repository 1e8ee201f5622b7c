/** Metrics of recurring schedules, on the node's registry (EngineMetrics.registry). */
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';

export class ScheduleMetrics {
  private readonly materialisedTotal: Counter<'kind'>;
  private readonly foundLateTotal: Counter<'misfire'>;
  private readonly fencedTotal: Counter;
  private readonly passSeconds: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.materialisedTotal = new Counter({
      name: 'hourglass_schedule_occurrences_materialized_total',
      help: 'Occurrences of recurring schedules inserted as messages (kind: on_time, or missed for catch-ups after a misfire).',
      labelNames: ['kind'],
      registers,
    });
    this.foundLateTotal = new Counter({
      name: 'hourglass_schedules_found_late_total',
      help: 'Schedules the materialiser found with their next occurrence already past by more than the misfire grace (the cluster was down, or materialisation fell behind), by misfire policy applied. Should stay 0 in normal operation.',
      labelNames: ['misfire'],
      registers,
    });
    this.fencedTotal = new Counter({
      name: 'hourglass_schedule_steps_fenced_total',
      help: 'Materialisation steps that wrote nothing because another node had taken the slot over.',
      registers,
    });
    this.passSeconds = new Histogram({
      name: 'hourglass_schedule_pass_duration_seconds',
      help: 'How long one materialisation pass over the owned slots took.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers,
    });
  }

  materialised(onTime: number, missed: number): void {
    if (onTime > 0) this.materialisedTotal.inc({ kind: 'on_time' }, onTime);
    if (missed > 0) this.materialisedTotal.inc({ kind: 'missed' }, missed);
  }

  foundLate(misfire: string): void {
    this.foundLateTotal.inc({ misfire });
  }

  fenced(): void {
    this.fencedTotal.inc();
  }

  pass(seconds: number): void {
    this.passSeconds.observe(seconds);
  }
}
