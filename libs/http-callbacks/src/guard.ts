/**
 * The SSRF guard: callbacks connect only to addresses the {@link AddressPolicy} allows.
 *
 * The check sits in the socket's own DNS lookup, so the address judged is the address connected
 * to: a name cannot resolve to a public address when checked and a private one when connected
 * (DNS rebinding). Node's `net.connect` skips the lookup for IP literals, so those are checked
 * separately, by {@link refusalOfUrlHost}, before anything is dispatched.
 */
import type dns from 'node:dns';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { AddressPolicy } from '@hourglass/core';
import { literalAddressOf } from '@hourglass/core';
import { CallFailure } from './errors';

export type Lookup = typeof dns.lookup;

/** At most this many refused addresses are named in one error, to keep it readable. */
const NAMED_REFUSALS = 3;

/**
 * A lookup for `net.connect` that resolves every address of the name and drops the refused ones.
 * With `all: true` (Node's happy-eyeballs connect) it returns the allowed ones; otherwise the
 * first allowed one. When none is allowed it fails with a {@link CallFailure} naming the reasons.
 */
export function guardedLookup(policy: AddressPolicy, lookup: Lookup): LookupFunction {
  return (hostname, options, callback) => {
    const wantsAll = typeof options === 'object' && options !== null && options.all === true;
    const allOptions = { ...(typeof options === 'object' ? options : {}), all: true as const };
    lookup(hostname, allOptions, (error, addresses) => {
      if (error) {
        callback(error, '');
        return;
      }
      const allowed = allowedAddresses(policy, hostname, addresses);
      if (allowed instanceof CallFailure) {
        callback(allowed, '');
        return;
      }
      if (wantsAll) {
        callback(null, allowed);
        return;
      }
      const [first] = allowed as [LookupAddress];
      callback(null, first.address, first.family);
    });
  };
}

function allowedAddresses(
  policy: AddressPolicy,
  hostname: string,
  addresses: readonly LookupAddress[],
): LookupAddress[] | CallFailure {
  const allowed: LookupAddress[] = [];
  const reasons: string[] = [];
  for (const entry of addresses) {
    const reason = policy.refusal(entry.address);
    if (reason === null) allowed.push(entry);
    else reasons.push(reason);
  }
  if (allowed.length > 0) return allowed;
  if (reasons.length === 0) {
    return new CallFailure('ADDRESS_REFUSED', `${hostname} resolves to no address`);
  }
  const named = reasons.slice(0, NAMED_REFUSALS).join('; ');
  const more =
    reasons.length > NAMED_REFUSALS ? ` (and ${reasons.length - NAMED_REFUSALS} more)` : '';
  return new CallFailure(
    'ADDRESS_REFUSED',
    `${hostname} resolves only to refused addresses: ${named}${more}`,
  );
}

/** Why the policy refuses the URL's host when it is an IP literal; null for names and allowed literals. */
export function refusalOfUrlHost(policy: AddressPolicy, url: URL): string | null {
  const literal = literalAddressOf(url.hostname);
  return literal === null ? null : policy.refusal(literal);
}
