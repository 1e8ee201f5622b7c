/**
 * The SSRF guard end to end: literal addresses in any notation, names that resolve to refused
 * addresses (checked on the addresses actually connected to), and names with mixed answers.
 */
import assert from 'node:assert/strict';
import { AddressPolicy } from '@hourglass/core';
import { UndiciHttpCaller } from '@hourglass/http-callbacks';
import { Receiver, callbackRequest, fixedLookup } from '../support/receiver';

const PUBLIC_ONLY = new AddressPolicy([]);
const LOCAL = new AddressPolicy(['127.0.0.0/8']);
const ONLY_PUBLIC_TEXT = 'callbacks connect only to public addresses';

describe('the SSRF guard', () => {
  const callers: UndiciHttpCaller[] = [];
  const receivers: Receiver[] = [];

  function caller(
    options: Partial<ConstructorParameters<typeof UndiciHttpCaller>[0]> = {},
  ): UndiciHttpCaller {
    const made = new UndiciHttpCaller({ policy: PUBLIC_ONLY, ...options });
    callers.push(made);
    return made;
  }

  async function okReceiver(): Promise<Receiver> {
    const started = await Receiver.start((_request, response) => response.end('ok'));
    receivers.push(started);
    return started;
  }

  afterEach(async () => {
    await Promise.all(callers.splice(0).map((made) => made.stop()));
    await Promise.all(receivers.splice(0).map((started) => started.close()));
  });

  const literals: Array<[url: string, reason: RegExp]> = [
    ['http://10.0.0.1/hook', /^10\.0\.0\.1 is a private address/],
    ['http://169.254.169.254/latest/meta-data/', /^169\.254\.169\.254 is a linkLocal address/],
    ['http://[::1]/hook', /^::1 is a loopback address/],
    // The URL parser normalises the hexadecimal form to 127.0.0.1.
    ['http://0x7f000001/hook', /^127\.0\.0\.1 is a loopback address/],
    // IPv4-mapped IPv6: judged by the IPv4 address it carries.
    ['http://[::ffff:127.0.0.1]/hook', /^::ffff:7f00:1 is a loopback address/],
  ];
  for (const [url, reason] of literals) {
    it(`refuses ${url} before connecting, with the reason`, async () => {
      const result = await caller().call(callbackRequest(url));
      assert.equal(result.ok, false);
      assert.equal(result.status, null);
      assert.match(result.error ?? '', reason);
      assert.ok(result.error?.includes(ONLY_PUBLIC_TEXT), result.error ?? '');
      assert.equal(result.durationMs, 0);
    });
  }

  it('refuses a host name that resolves to a loopback address; the receiver gets nothing', async () => {
    const target = await okReceiver();
    const result = await caller().call(callbackRequest(`http://localhost:${target.port}/hook`));
    assert.equal(result.ok, false);
    assert.equal(result.status, null);
    assert.match(result.error ?? '', /^localhost resolves only to refused addresses: /);
    assert.match(result.error ?? '', /(127\.0\.0\.1|::1) is a loopback address/);
    assert.ok(result.error?.includes(ONLY_PUBLIC_TEXT), result.error ?? '');
    assert.equal(target.connections, 0);
    assert.equal(target.requests.length, 0);
  });

  it('connects only to the allowed address of a name that also resolves to refused ones', async () => {
    // Two real receivers on one port: the refused address is reachable, so only the guard keeps
    // the call away from it (happy eyeballs would otherwise try it first).
    const allowed = await Receiver.start((_request, response) => response.end('ok'), '127.0.0.2');
    receivers.push(allowed);
    const refused = await Receiver.start(
      (_request, response) => response.end('ok'),
      '127.0.0.1',
      allowed.port,
    );
    receivers.push(refused);
    const lookup = fixedLookup({
      'hooks.example': [
        { address: '127.0.0.1', family: 4 },
        { address: '127.0.0.2', family: 4 },
      ],
    });
    const result = await caller({ policy: new AddressPolicy(['127.0.0.2/32']), lookup }).call(
      callbackRequest(`http://hooks.example:${allowed.port}/hook`),
    );
    assert.equal(result.ok, true, result.error ?? '');
    assert.equal(allowed.requests.length, 1);
    assert.equal(allowed.requests[0]?.headers.host, `hooks.example:${allowed.port}`);
    assert.equal(refused.connections, 0);
  });

  it('names every refused address of a name with no allowed one', async () => {
    const lookup = fixedLookup({
      'internal.example': [
        { address: '10.1.2.3', family: 4 },
        { address: 'fd00::1', family: 6 },
      ],
    });
    const result = await caller({ policy: LOCAL, lookup }).call(
      callbackRequest('http://internal.example/hook'),
    );
    assert.equal(result.ok, false);
    assert.equal(
      result.error,
      'internal.example resolves only to refused addresses: ' +
        `10.1.2.3 is a private address; ${ONLY_PUBLIC_TEXT} (allow a range with callbacks.allowNetworks); ` +
        `fd00::1 is a uniqueLocal address; ${ONLY_PUBLIC_TEXT} (allow a range with callbacks.allowNetworks)`,
    );
  });

  it('reports a name that does not resolve', async () => {
    const result = await caller({ lookup: fixedLookup({}) }).call(
      callbackRequest('http://nowhere.example:8080/hook'),
    );
    assert.equal(result.ok, false);
    assert.equal(result.error, 'host name nowhere.example not found (ENOTFOUND)');
  });

  it('lets an allowed literal address through', async () => {
    const target = await okReceiver();
    const result = await caller({ policy: LOCAL }).call(callbackRequest(target.url()));
    assert.equal(result.ok, true, result.error ?? '');
    assert.equal(target.requests.length, 1);
  });
});
