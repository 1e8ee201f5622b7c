/** Search parameters, bulk cancel bodies and the paging cursor (libs/core/src/search.ts). */
import assert from 'node:assert/strict';
import type { HourglassError, MessageFilter } from '../../src';
import {
  decodeCursor,
  encodeCursor,
  filterHash,
  parseCancelRequest,
  parseSearchQuery,
} from '../../src';

function problemPaths(work: () => unknown): string[] {
  try {
    work();
  } catch (error) {
    const refused = error as HourglassError;
    assert.equal(refused.code, 'invalid_request');
    return (refused.details ?? []).map((detail) => detail.path);
  }
  assert.fail('accepted');
}

const SHOP = { app: 'shop' };

describe('search: parameters', () => {
  it('maps public states to stored ones and reads every filter', () => {
    const { filter, limit, after } = parseSearchQuery(
      {
        state: 'scheduled,failed',
        topic: 'orders',
        key: 'customer-7',
        dueAfter: '2030-01-01T10:00:00Z',
        dueBefore: '2030-01-01T12:00:00+02:00',
        createdAfter: '2029-12-31T00:00:00.5Z',
        target: 'http',
        limit: '250',
      },
      SHOP,
    );
    assert.deepEqual(filter, {
      app: 'shop',
      states: ['scheduled', 'delivering', 'failed'],
      topic: 'orders',
      key: 'customer-7',
      dueAfterMs: Date.parse('2030-01-01T10:00:00Z'),
      dueBeforeMs: Date.parse('2030-01-01T10:00:00Z'),
      createdAfterMs: Date.parse('2029-12-31T00:00:00.500Z'),
      target: 'http',
    });
    assert.equal(limit, 250);
    assert.equal(after, null);
    assert.equal(parseSearchQuery({}, SHOP).limit, 100);
  });

  it('names every bad parameter', () => {
    assert.deepEqual(
      problemPaths(() =>
        parseSearchQuery(
          {
            state: 'pending',
            limit: '0',
            dueAfter: '2030-01-01',
            target: 'smtp',
            key: ['a', 'b'],
            topic: 'a b',
            colour: 'red',
          },
          SHOP,
        ),
      ).sort(),
      ['colour', 'dueAfter', 'key', 'limit', 'state', 'target', 'topic'],
    );
    for (const limit of ['1001', '-1', '1.5', '', '1e3'])
      assert.deepEqual(
        problemPaths(() => parseSearchQuery({ limit }, SHOP)),
        ['limit'],
        limit,
      );
    assert.deepEqual(
      problemPaths(() => parseSearchQuery({ key: 'a\u0000' }, SHOP)),
      ['key'],
    );
    // `app` belongs to the admin variant only.
    assert.deepEqual(
      problemPaths(() => parseSearchQuery({ app: 'shop' }, SHOP)),
      ['app'],
    );
    assert.equal(parseSearchQuery({ app: 'shop' }, { app: null }).filter.app, 'shop');
    assert.equal(parseSearchQuery({}, { app: null }).filter.app, null);
    assert.deepEqual(
      problemPaths(() => parseSearchQuery({ app: 'Shop!' }, { app: null })),
      ['app'],
    );
  });
});

describe('search: cursors', () => {
  const filter = parseSearchQuery({ key: 'k' }, SHOP).filter;

  it('round-trips a position, base64url only', () => {
    const cursor = encodeCursor({ app: 'shop', id: 'order:42.v1_x-y' }, filter, 'list');
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCursor(cursor, filter, 'list', 'cursor'), {
      app: 'shop',
      id: 'order:42.v1_x-y',
    });
    const { after } = parseSearchQuery({ key: 'k', cursor }, SHOP);
    assert.deepEqual(after, { app: 'shop', id: 'order:42.v1_x-y' });
  });

  it('only continues the filter, app and use it was issued for', () => {
    const cursor = encodeCursor({ app: 'shop', id: 'm-1' }, filter, 'list');
    const other: MessageFilter = { ...filter, key: 'other' };
    assert.throws(() => decodeCursor(cursor, other, 'list', 'cursor'), /another filter/);
    assert.throws(
      () => decodeCursor(cursor, { ...filter, app: 'rival' }, 'list', 'cursor'),
      /another filter/,
    );
    assert.throws(() => decodeCursor(cursor, filter, 'cancel', 'cursor'), /another filter/);
    assert.notEqual(filterHash(filter, 'list'), filterHash(other, 'list'));
    // Equal filters hash equally, however they were written.
    assert.equal(
      filterHash(parseSearchQuery({ state: 'failed,scheduled' }, SHOP).filter, 'list'),
      filterHash(parseSearchQuery({ state: 'scheduled,failed,scheduled' }, SHOP).filter, 'list'),
    );
  });

  it('refuses anything that is not one of its cursors, at the cursor parameter', () => {
    const forged = (value: unknown): string =>
      Buffer.from(JSON.stringify(value)).toString('base64url');
    const hash = filterHash(filter, 'list');
    for (const cursor of [
      '',
      'not a cursor',
      '!!!',
      'x'.repeat(2000),
      forged({ app: 'shop' }),
      forged([2, 'shop', 'm', hash]),
      forged([1, 'shop', 'bad id!', hash]),
      forged([1, 'Shop', 'm', hash]),
      forged([1, 'shop', 'm', hash, 'extra']),
      Buffer.from('[1,"shop"').toString('base64url'),
    ])
      assert.deepEqual(
        problemPaths(() => decodeCursor(cursor, filter, 'list', 'cursor')),
        ['cursor'],
        cursor,
      );
    assert.deepEqual(decodeCursor(forged([1, 'shop', 'm', hash]), filter, 'list', 'cursor'), {
      app: 'shop',
      id: 'm',
    });
  });
});

describe('search: bulk cancel bodies', () => {
  it('takes ids, deduplicated, or a filter restricted to scheduled messages', () => {
    assert.deepEqual(parseCancelRequest({ ids: ['a', 'b', 'a'] }, 'shop'), {
      kind: 'ids',
      ids: ['a', 'b'],
    });
    const request = parseCancelRequest({ filter: { key: 'k' } }, 'shop');
    assert.equal(request.kind, 'filter');
    if (request.kind !== 'filter') return;
    assert.deepEqual(request.filter.states, ['scheduled', 'delivering']);
    assert.equal(request.filter.app, 'shop');
    assert.equal(request.filter.key, 'k');
    assert.equal(request.after, null);
    const same = parseCancelRequest({ filter: { key: 'k', state: 'scheduled' } }, 'shop');
    assert.equal(
      same.kind === 'filter' && filterHash(same.filter, 'cancel'),
      filterHash(request.filter, 'cancel'),
    );
    const cursor = encodeCursor({ app: 'shop', id: 'm-9' }, request.filter, 'cancel');
    const resumed = parseCancelRequest({ filter: { key: 'k' }, cursor }, 'shop');
    assert.deepEqual(resumed.kind === 'filter' && resumed.after, { app: 'shop', id: 'm-9' });
  });

  it('names what is wrong', () => {
    const paths = (body: unknown): string[] => problemPaths(() => parseCancelRequest(body, 'shop'));
    assert.deepEqual(paths(null), ['/']);
    assert.deepEqual(paths([]), ['/']);
    assert.deepEqual(paths({}), ['ids']);
    assert.deepEqual(paths({ ids: ['a'], filter: {} }), ['filter']);
    assert.deepEqual(paths({ ids: [] }), ['ids']);
    assert.deepEqual(paths({ ids: 'a' }), ['ids']);
    assert.deepEqual(paths({ ids: Array.from({ length: 1001 }, (_, i) => `m${i}`) }), ['ids']);
    assert.deepEqual(paths({ ids: ['ok', 'not ok', 7] }), ['ids/1', 'ids/2']);
    assert.deepEqual(paths({ ids: ['a'], cursor: 'x' }), ['cursor']);
    assert.deepEqual(paths({ filter: 'k' }), ['filter']);
    assert.deepEqual(paths({ filter: { state: 'delivered' } }), ['filter/state']);
    assert.deepEqual(paths({ filter: { key: 'k', limit: 5 } }), ['filter/limit']);
    assert.deepEqual(paths({ filter: { dueBefore: 'soon', topic: '..x y' } }).sort(), [
      'filter/dueBefore',
      'filter/topic',
    ]);
    assert.deepEqual(paths({ filter: {}, extra: true }), ['extra']);
  });
});
