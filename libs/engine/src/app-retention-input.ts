/**
 * Validation of an app's retention overrides as an admin sends them (PATCH /v1/admin/apps/{app}
 * `retention`): how many days its delivered, cancelled and failed messages are kept before the
 * retention job removes them. Pure: problems are added with their path, nothing is stored here.
 */
import type { AppRetention, AppRetentionPatch, ErrorDetail } from '@hourglass/core';
import { DAY_MS } from '@hourglass/core';
import { unknownFields } from './app-delivery-input';

/** The longest retention an app may ask for: 100 years. */
export const MAX_RETENTION_DAYS = 36_500;

const FIELDS = new Set(['deliveredDays', 'cancelledDays', 'failedDays']);

/** Days (fractions allowed: 0.5 is 12 hours); null goes back to the configured default. */
export interface AppRetentionInput {
  readonly deliveredDays?: number | null;
  readonly cancelledDays?: number | null;
  readonly failedDays?: number | null;
}

/** What clients see: days, null where the configured default applies. */
export interface AppRetentionView {
  readonly deliveredDays: number | null;
  readonly cancelledDays: number | null;
  readonly failedDays: number | null;
}

export function retentionView(retention: AppRetention | undefined): AppRetentionView {
  const days = (ms: number | null | undefined): number | null =>
    ms === null || ms === undefined ? null : ms / DAY_MS;
  return {
    deliveredDays: days(retention?.deliveredMs),
    cancelledDays: days(retention?.cancelledMs),
    failedDays: days(retention?.failedMs),
  };
}

/** Validates a retention change; problems are added at `path` + field (`retention/failedDays`). */
export function parseRetentionPatch(
  input: AppRetentionInput,
  path: string,
  problems: ErrorDetail[],
): AppRetentionPatch {
  const value = input as Record<string, unknown>;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return {};
  }
  unknownFields(value, FIELDS, path, problems);
  const field = (name: string): number | null | undefined => {
    const days = value[name];
    if (days === undefined || days === null) return days;
    if (
      typeof days !== 'number' ||
      !Number.isFinite(days) ||
      days <= 0 ||
      days > MAX_RETENTION_DAYS ||
      Math.round(days * DAY_MS) < 1
    ) {
      problems.push({
        path: `${path}${name}`,
        message: `must be a number of days above 0 and at most ${MAX_RETENTION_DAYS}, or null for the default`,
      });
      return undefined;
    }
    return Math.round(days * DAY_MS);
  };
  const patch: {
    deliveredMs?: number | null;
    cancelledMs?: number | null;
    failedMs?: number | null;
  } = {};
  const delivered = field('deliveredDays');
  const cancelled = field('cancelledDays');
  const failed = field('failedDays');
  if (delivered !== undefined) patch.deliveredMs = delivered;
  if (cancelled !== undefined) patch.cancelledMs = cancelled;
  if (failed !== undefined) patch.failedMs = failed;
  return patch;
}
