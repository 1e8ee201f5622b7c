/**
 * Admin calls the suite makes through the nodes: granting the run's topic to the app, and, for a
 * missing or early message (or a moved one delivered in a version it must not be), what the cluster says about it (GET /v1/messages/{id}, and for a
 * callback GET /v1/messages/{id}/attempts) and the node log lines naming it, kept in the result
 * next to what the client and the consumer or the receiver saw.
 */
import { readFileSync } from 'node:fs';
import { SetupError, sleep } from './common';
import type { Cluster } from './cluster';
import type { SentMessage, Via } from './load';
import type { Arrival, Arrivals, Findings } from './report';

const MAX_EVIDENCE = 100;
/** Node log lines kept per message (the first ones, by node). */
const MAX_LOG_LINES = 40;

/** POST /v1/admin/apps/{app}/topics on the first node that answers (the topic exists already). */
export async function grantTopic(
  urls: readonly string[],
  app: string,
  topic: string,
  adminToken: string,
): Promise<void> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const url = urls[attempt % urls.length];
    try {
      const response = await fetch(`${url}/v1/admin/apps/${app}/topics`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic }),
        signal: AbortSignal.timeout(10_000),
      });
      if (response.ok) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(500);
  }
  throw new SetupError(`could not grant topic ${topic} to app ${app}: ${last}`);
}

type Answer = { node: string; status: number; body: unknown } | { error: string };

export interface Evidence {
  id: string;
  problem: 'missing' | 'early' | 'old version';
  via: Via | undefined;
  sent: SentMessage | undefined;
  /** Kafka records, or callback requests (a refused one with `accepted: false`). */
  receipts: readonly Arrival[];
  /** GET /v1/messages/{id}: the node asked, its status and body. */
  cluster: Answer;
  /** GET /v1/messages/{id}/attempts, for a callback. */
  attempts?: Answer;
  /** Node log lines naming the id: `<node>: <line>`. */
  logLines: string[];
}

async function ask(cluster: Cluster, token: string, path: string): Promise<Answer> {
  let error = 'no node running';
  for (const node of cluster.nodes.filter((n) => n.running && !n.paused)) {
    try {
      const response = await fetch(`${node.url}${path}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5_000),
      });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // keep the text
      }
      return { node: node.name, status: response.status, body };
    } catch (caught) {
      error = String(caught);
    }
  }
  return { error };
}

/** The lines of every node's log that name one of `ids` (an id is never a prefix of another). */
function logLinesOf(cluster: Cluster, ids: readonly string[]): Map<string, string[]> {
  const lines = new Map<string, string[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return lines;
  // Ids are chaos-<run>-<seq>, chaos-<run>-cb<seq>, chaos-<run>-mv<seq> and occurrences
  // chaos-<run>-s<n>:<revision>:<ms>: the whole id, not followed by a digit.
  const pattern = /chaos-[0-9a-z]+-[0-9a-f]+-(?:(?:cb|mv)?\d+|s\d+:\d+:\d+)/g;
  for (const node of cluster.nodes) {
    let text: string;
    try {
      text = readFileSync(node.logFile, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      for (const match of new Set(line.match(pattern) ?? [])) {
        const list = lines.get(match);
        if (list && list.length < MAX_LOG_LINES) list.push(`${node.name}: ${line}`);
      }
    }
  }
  return lines;
}

export async function collectEvidence(
  cluster: Cluster,
  token: string,
  findings: Findings,
  messages: ReadonlyMap<string, SentMessage>,
  arrivals: Arrivals,
): Promise<Evidence[]> {
  const wanted = [
    ...findings.missingIds.map((id) => ({ id, problem: 'missing' as const })),
    ...findings.earlyIds.map((id) => ({ id, problem: 'early' as const })),
    ...findings.oldVersionIds.map((id) => ({ id, problem: 'old version' as const })),
  ].slice(0, MAX_EVIDENCE);
  const logLines = logLinesOf(
    cluster,
    wanted.map((w) => w.id),
  );
  const out: Evidence[] = [];
  for (const { id, problem } of wanted) {
    const sent = messages.get(id);
    const path = `/v1/messages/${encodeURIComponent(id)}`;
    out.push({
      id,
      problem,
      via: sent?.via,
      sent,
      receipts: sent ? (arrivals[sent.via].get(id) ?? []) : [],
      cluster: await ask(cluster, token, path),
      ...(sent?.via === 'http' ? { attempts: await ask(cluster, token, `${path}/attempts`) } : {}),
      logLines: logLines.get(id) ?? [],
    });
  }
  return out;
}
