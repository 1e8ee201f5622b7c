/**
 * What happens beside a delivery that keeps failing: the app's dead-letter topic gets a target
 * that finally failed, and the app's alert endpoint or topic hears when a target's attempts reach
 * `alerts.afterAttempts` and when it finally fails (the delay-server seed's "alert after many
 * retries"). Both are best effort beside the message's own state, which always shows the failure.
 */
import type {
  AppDeliveryConfig,
  ClaimedMessage,
  Delivery,
  HttpCaller,
  Logger,
  TargetSpec,
} from '@hourglass/core';
import { isoTime, targetLabel, webhookHeaders } from '@hourglass/core';
import type { EngineMetrics } from '../metrics';
import { askedDueMs } from './callback-request';

export type AlertType = 'callback.retrying' | 'callback.failed';

export interface FailureNoticesDeps {
  readonly delivery: Delivery;
  readonly http: HttpCaller | undefined;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly now: () => number;
}

const ALERT_TIMEOUT_MS = 10_000;

export class FailureNotices {
  constructor(private readonly deps: FailureNoticesDeps) {}

  /** Produces the failed target's message to the app's dead-letter topic, if it has one. */
  async deadLetter(
    message: ClaimedMessage,
    target: TargetSpec,
    attempts: number,
    error: string,
    config: AppDeliveryConfig,
  ): Promise<void> {
    if (config.deadLetterTopic === null) return;
    const record: ClaimedMessage = {
      ...message,
      topic: config.deadLetterTopic,
      key: message.key,
      deliverAtMs: askedDueMs(message),
      headers: {
        ...message.headers,
        'hourglass-failed-target': targetLabel(target),
        'hourglass-error': error.slice(0, 1000),
        'hourglass-attempts': String(attempts),
      },
    };
    const [outcome] = await this.deps.delivery.deliver([record]);
    if (outcome?.kind === 'delivered') this.deps.metrics.deadLetter(message.app, 'produced');
    else {
      this.deps.metrics.deadLetter(message.app, 'failed');
      this.deps.logger.warn(
        { app: message.app, id: message.id, err: outcome?.error },
        'could not produce a failed message to its dead-letter topic; it stays visible as failed',
      );
    }
  }

  /** Sends one alert event (never throws; failures are counted and logged). */
  async alert(
    type: AlertType,
    message: ClaimedMessage,
    targetIndex: number,
    target: TargetSpec,
    attempts: number,
    error: string | null,
    config: AppDeliveryConfig,
    secrets: readonly string[],
  ): Promise<void> {
    const alerts = config.alerts;
    if (!alerts) return;
    const at = this.deps.now();
    const event = {
      type,
      app: message.app,
      id: message.id,
      target: targetIndex,
      targetName: targetLabel(target),
      attempts,
      error,
      at: isoTime(at),
    };
    const body = Buffer.from(JSON.stringify(event), 'utf8');
    const sends: Array<Promise<boolean>> = [];
    if (alerts.url !== null && this.deps.http) {
      const eventId = `${message.id}.${targetIndex}.${type}`;
      sends.push(
        this.deps.http
          .call({
            app: message.app,
            url: alerts.url,
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'hourglass-app': message.app,
              'hourglass-alert': type,
              ...(secrets.length > 0
                ? webhookHeaders(secrets, eventId, Math.floor(at / 1000), body)
                : {}),
            },
            body,
            timeoutMs: ALERT_TIMEOUT_MS,
            expectBody: null,
          })
          .then((result) => result.ok),
      );
    }
    if (alerts.topic !== null) {
      sends.push(
        this.deps.delivery
          .deliver([
            {
              ...message,
              topic: alerts.topic,
              key: message.id,
              payload: body,
              headers: { 'hourglass-alert': type },
              deliverAtMs: at,
            },
          ])
          .then(([outcome]) => outcome?.kind === 'delivered'),
      );
    }
    const results = await Promise.all(sends.map((send) => send.catch(() => false)));
    for (const ok of results) {
      this.deps.metrics.alert(ok ? 'sent' : 'failed');
      if (!ok)
        this.deps.logger.warn(
          { app: message.app, id: message.id, type },
          'an alert could not be sent',
        );
    }
  }
}
