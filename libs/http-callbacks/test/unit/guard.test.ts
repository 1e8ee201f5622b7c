/**
 * guardedLookup (../../src/guard.ts) on its own: both answer shapes Node's net.connect asks for,
 * and errors passed through untouched.
 */
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { AddressPolicy } from '@hourglass/core';
import { CallFailure } from '../../src/errors';
import { guardedLookup } from '../../src/guard';
import { fixedLookup } from '../support/receiver';

const LOCAL = new AddressPolicy(['127.0.0.0/8']);

const lookup = guardedLookup(
  LOCAL,
  fixedLookup({
    mixed: [
      { address: '192.168.0.10', family: 4 },
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.3', family: 4 },
    ],
    private: [{ address: '192.168.0.10', family: 4 }],
  }),
);

interface Answer {
  error: NodeJS.ErrnoException | null;
  address: string | LookupAddress[];
  family: number | undefined;
}

function resolve(hostname: string, all: boolean): Promise<Answer> {
  return new Promise((done) =>
    lookup(hostname, { all }, (error, address, family) => done({ error, address, family })),
  );
}

describe('guardedLookup', () => {
  it('answers all allowed addresses, and only those, when asked for all', async () => {
    const answer = await resolve('mixed', true);
    assert.equal(answer.error, null);
    assert.deepEqual(answer.address, [
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.3', family: 4 },
    ]);
  });

  it('answers the first allowed address when asked for one', async () => {
    const answer = await resolve('mixed', false);
    assert.equal(answer.error, null);
    assert.equal(answer.address, '127.0.0.2');
    assert.equal(answer.family, 4);
  });

  it('fails with a typed refusal when no address is allowed', async () => {
    const answer = await resolve('private', false);
    assert.ok(answer.error instanceof CallFailure);
    assert.equal(answer.error.code, 'ADDRESS_REFUSED');
    assert.match(
      answer.error.message,
      /^private resolves only to refused addresses: 192\.168\.0\.10 is a private address/,
    );
  });

  it('passes resolver errors through', async () => {
    const answer = await resolve('unknown', true);
    assert.equal(answer.error?.code, 'ENOTFOUND');
  });
});
