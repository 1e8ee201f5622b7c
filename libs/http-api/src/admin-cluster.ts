/**
 * Admin endpoints of the cluster (admin token only):
 *
 *   GET    /v1/admin/cluster                 nodes, their slots, each slot's owner, epoch and pin
 *   PUT    /v1/admin/slots/{slot}/pin        body {"node": "<id>"}: pin a slot to a live node
 *   DELETE /v1/admin/slots/{slot}/pin        remove the pin (idempotent)
 *   POST   /v1/admin/nodes/{id}/drain        the node keeps running but owns no slot
 *   POST   /v1/admin/nodes/{id}/undrain
 *
 * Any node serves them: writes go to the coordination store, and every node reacts to them after
 * the rebalance debounce. The responses acknowledge the write, not the resulting slot moves; poll
 * GET /v1/admin/cluster to watch those happen.
 */
import type { SlotLease } from '@hourglass/core';
import type { ClusterView } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';
import type { AppDirectory } from '@hourglass/engine';
import type { Request, Router } from 'express';
import express from 'express';
import { ROUTER_OPTIONS, requireAdmin } from './admin';
import { jsonBody, requireJson } from './body';

/**
 * The cluster operations behind the endpoints. EtcdCoordinator implements it; a standalone node
 * uses {@link standaloneClusterAdmin}. Methods throw {@link HourglassError} (`not_found` for an
 * unknown node, `unavailable` when the coordination store is down).
 */
export interface ClusterAdmin {
  readonly slotCount: number;
  clusterView(): Promise<ClusterView>;
  pinSlot(slot: number, node: string): Promise<void>;
  unpinSlot(slot: number): Promise<void>;
  drainNode(node: string): Promise<void>;
  undrainNode(node: string): Promise<void>;
}

export interface AdminClusterOptions {
  cluster: ClusterAdmin;
  apps: AppDirectory;
  /** Largest JSON body accepted. @default 16384 */
  maxBodyBytes?: number;
}

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

function slotParam(req: Request, slotCount: number): number {
  const text = String(req.params.slot);
  const slot = /^(0|[1-9][0-9]{0,8})$/.test(text) ? Number(text) : Number.NaN;
  if (!(slot < slotCount)) {
    throw new HourglassError(
      'invalid_request',
      `slot must be an integer from 0 to ${slotCount - 1}`,
      [{ path: 'slot', message: `"${text.slice(0, 32)}" is not a slot of this cluster` }],
    );
  }
  return slot;
}

function nodeId(value: unknown, path: string): string {
  if (typeof value !== 'string' || !NODE_ID.test(value)) {
    throw new HourglassError(
      'invalid_request',
      'node ids are 1-64 characters of A-Z a-z 0-9 . _ -',
      [{ path, message: typeof value === 'string' ? 'invalid node id' : 'required, a string' }],
    );
  }
  return value;
}

/** The admin cluster routes, to mount through `createHttpApi({ extraRoutes })`. */
export function adminClusterRouter(options: AdminClusterOptions): Router {
  const { cluster, apps } = options;
  const router = express.Router(ROUTER_OPTIONS);

  // Per route, not router.use(): this router sits in front of the 404 handler for every path.
  // Behind createHttpApi the admin gate has already checked the token and the body; these keep
  // the router safe on its own, with the same rule (a body parsed by the gate is not re-read).
  const admin = requireAdmin(apps);
  const json = jsonBody({ limit: options.maxBodyBytes ?? 16_384, maxDepth: 32 });

  router.get('/v1/admin/cluster', admin, async (_req, res) => {
    res.json(await cluster.clusterView());
  });

  router.put('/v1/admin/slots/:slot/pin', admin, requireJson, json, async (req, res) => {
    const slot = slotParam(req, cluster.slotCount);
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HourglassError(
        'invalid_request',
        'the body must be a JSON object {"node": "<id>"}',
        [{ path: '', message: 'expected an object' }],
      );
    }
    const node = nodeId((body as { node?: unknown }).node, 'node');
    await cluster.pinSlot(slot, node);
    res.json({ slot, pinnedTo: node });
  });

  router.delete('/v1/admin/slots/:slot/pin', admin, async (req, res) => {
    const slot = slotParam(req, cluster.slotCount);
    await cluster.unpinSlot(slot);
    res.json({ slot, pinnedTo: null });
  });

  router.post('/v1/admin/nodes/:id/drain', admin, async (req, res) => {
    const node = nodeId(req.params.id, 'id');
    await cluster.drainNode(node);
    res.json({ node, drained: true });
  });

  router.post('/v1/admin/nodes/:id/undrain', admin, async (req, res) => {
    const node = nodeId(req.params.id, 'id');
    await cluster.undrainNode(node);
    res.json({ node, drained: false });
  });

  return router;
}

export interface StandaloneNode {
  readonly id: string;
  /** Known once the servers listen, hence functions. */
  readonly httpUrl: () => string;
  readonly grpcAddress: () => string;
  readonly startedAt: string;
  readonly slotCount: number;
  /** The engine's owned slots and epochs. */
  readonly ownedSlots: () => readonly SlotLease[];
}

/**
 * The cluster view of a standalone node (`cluster.mode: standalone`), which owns every slot.
 * Pins and drains need a cluster and are refused with `invalid_request`.
 */
export function standaloneClusterAdmin(node: StandaloneNode): ClusterAdmin {
  const refuse = (): Promise<void> =>
    Promise.reject(
      new HourglassError(
        'invalid_request',
        'this node runs with cluster.mode=standalone; pins and drains need cluster.mode=etcd',
      ),
    );
  return {
    slotCount: node.slotCount,
    clusterView() {
      const owned = new Map(node.ownedSlots().map((lease) => [lease.slot, lease.epoch]));
      const slots: ClusterView['slots'] = [];
      for (let slot = 0; slot < node.slotCount; slot++) {
        const epoch = owned.get(slot);
        slots.push({ slot, owner: epoch === undefined ? null : node.id, epoch: epoch ?? null });
      }
      return Promise.resolve({
        slotCount: node.slotCount,
        nodes: [
          {
            id: node.id,
            httpUrl: node.httpUrl(),
            grpcAddress: node.grpcAddress(),
            startedAt: node.startedAt,
            drained: false,
            slots: [...owned.keys()].sort((a, b) => a - b),
          },
        ],
        slots,
      });
    },
    pinSlot: refuse,
    unpinSlot: refuse,
    drainNode: refuse,
    undrainNode: refuse,
  };
}
