/**
 * One admin gate, one rule, wherever it is mounted: the admin token passes; a missing or unknown
 * token gets 401 `unauthenticated`; any app's token, a disabled app's included, gets 403
 * `forbidden` with the same message. Checked on the gate in front of every /v1/admin route and on
 * the cluster router on its own, with an in-memory app directory.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { HourglassError, isHourglassError } from '@hourglass/core';
import type { AppDirectory, AppIdentity } from '@hourglass/engine';
import { bearerToken, requireAdminToken } from '@hourglass/engine';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import { adminClusterRouter, adminGate, OpenApiValidator } from '../../src';
import type { ClusterAdmin } from '../../src';

const ADMIN = 'the-admin-token';

/** Tokens: `live` belongs to app "shop", `off` to the disabled app "sleepy". */
class FakeDirectory implements AppDirectory {
  authenticate(token: string): Promise<AppIdentity | null> {
    if (token === 'live') return Promise.resolve({ name: 'shop', topics: new Set() });
    // As DbAppDirectory does for a disabled app.
    if (token === 'off')
      return Promise.reject(new HourglassError('forbidden', 'app "sleepy" is disabled'));
    return Promise.resolve(null);
  }
  isAdmin(token: string): boolean {
    return token === ADMIN;
  }
}

const cluster: ClusterAdmin = {
  slotCount: 4,
  clusterView: () => Promise.resolve({ slotCount: 4, nodes: [], slots: [] }),
  pinSlot: () => Promise.resolve(),
  unpinSlot: () => Promise.resolve(),
  drainNode: () => Promise.resolve(),
  undrainNode: () => Promise.resolve(),
};

function errorHandler(error: unknown, _req: Request, res: Response, _next: NextFunction): void {
  if (isHourglassError(error)) {
    res.status(error.spec.http).json(error.toBody());
    return;
  }
  res.status(500).json({ error: { code: 'internal', message: String(error) } });
}

async function serve(app: express.Express): Promise<{ url: string; server: Server }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the admin gate', () => {
  const apps = new FakeDirectory();
  let gated: { url: string; server: Server };
  let bare: { url: string; server: Server };

  before(async () => {
    const withGate = express();
    withGate.use('/v1/admin', ...adminGate({ apps, validator: new OpenApiValidator() }));
    withGate.use(adminClusterRouter({ cluster, apps }));
    withGate.use(errorHandler);
    gated = await serve(withGate);
    const alone = express();
    alone.use(adminClusterRouter({ cluster, apps }));
    alone.use(errorHandler);
    bare = await serve(alone);
  });

  after(() => {
    gated?.server.close();
    bare?.server.close();
  });

  const call = async (base: string, token: string | null, path = '/v1/admin/cluster') => {
    const response = await fetch(`${base}${path}`, {
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
    });
    return {
      status: response.status,
      body: (await response.json()) as { error?: { code: string; message: string } },
    };
  };

  it('extracts bearer tokens one way for HTTP and gRPC', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer   abc  '), 'abc');
    assert.equal(bearerToken('Basic abc'), null);
    assert.equal(bearerToken('Bearer a b'), null);
    assert.equal(bearerToken(''), null);
    assert.equal(bearerToken(undefined), null);
    assert.equal(bearerToken(Buffer.from('Bearer abc')), null);
  });

  it('applies the same rule in front of every admin route and on the cluster router alone', async () => {
    for (const base of [gated.url, bare.url]) {
      assert.equal((await call(base, ADMIN)).status, 200);
      for (const token of [null, 'unknown']) {
        const refused = await call(base, token);
        assert.equal(refused.status, 401, `${base} ${token}`);
        assert.equal(refused.body.error?.code, 'unauthenticated');
      }
      const app = await call(base, 'live');
      assert.equal(app.status, 403);
      assert.equal(app.body.error?.code, 'forbidden');
      const disabled = await call(base, 'off');
      assert.equal(disabled.status, 403, JSON.stringify(disabled.body));
      assert.equal(disabled.body.error?.code, 'forbidden');
      assert.equal(
        disabled.body.error?.message,
        'app tokens may not use admin endpoints; use the admin token',
      );
    }
    // A disabled app's token is refused the same way by the gate and by the router alone.
    assert.deepEqual(await call(gated.url, 'off'), await call(bare.url, 'off'));
  });

  it('is the same function for every transport', async () => {
    await requireAdminToken(apps, ADMIN);
    await assert.rejects(requireAdminToken(apps, null), { code: 'unauthenticated' });
    await assert.rejects(requireAdminToken(apps, 'unknown'), { code: 'unauthenticated' });
    await assert.rejects(requireAdminToken(apps, 'live'), { code: 'forbidden' });
    await assert.rejects(requireAdminToken(apps, 'off'), { code: 'forbidden' });
  });
});
