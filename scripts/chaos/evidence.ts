/**
 * Admin calls the suite makes through the nodes: granting the run's topic to the app, and, for a
 * missing or early message, what the cluster says about it (GET /v1/messages/{id}), kept in the
 * result next to what the client and the consumer saw.
 */
import { SetupError, sleep } from './common';
import type { Cluster } from './cluster';
import type { Receipt } from './consumer';
import type { SentMessage } from './load';
import type { Findings } from './report';

const MAX_EVIDENCE = 100;

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

export interface Evidence {
  id: string;
  problem: 'missing' | 'early';
  sent: SentMessage | undefined;
  receipts: Receipt[];
  /** GET /v1/messages/{id}: the node asked, its status and body. */
  cluster: { node: string; status: number; body: unknown } | { error: string };
}

async function ask(cluster: Cluster, token: string, id: string): Promise<Evidence['cluster']> {
  let error = 'no node running';
  for (const node of cluster.nodes.filter((n) => n.running && !n.paused)) {
    try {
      const response = await fetch(`${node.url}/v1/messages/${encodeURIComponent(id)}`, {
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

export async function collectEvidence(
  cluster: Cluster,
  token: string,
  findings: Findings,
  messages: ReadonlyMap<string, SentMessage>,
  receipts: ReadonlyMap<string, Receipt[]>,
): Promise<Evidence[]> {
  const wanted = [
    ...findings.missingIds.map((id) => ({ id, problem: 'missing' as const })),
    ...findings.earlyIds.map((id) => ({ id, problem: 'early' as const })),
  ].slice(0, MAX_EVIDENCE);
  const out: Evidence[] = [];
  for (const { id, problem } of wanted) {
    out.push({
      id,
      problem,
      sent: messages.get(id),
      receipts: receipts.get(id) ?? [],
      cluster: await ask(cluster, token, id),
    });
  }
  return out;
}
