/**
 * Hourglass callbacks are Standard Webhooks (https://www.standardwebhooks.com), so receivers in
 * other languages can verify them with the standard libraries. Checked both ways against the
 * reference JavaScript library: what the server signs (@hourglass/core) the library accepts, and
 * what the library signs the SDK's receiver accepts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { newSigningSecret, webhookHeaders } from '@hourglass/core';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { CallbackReceiver, VerificationError, verifySignature } from '../../src';

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe('Standard Webhooks compatibility', () => {
  const secret = newSigningSecret(randomBytes);
  const oldSecret = newSigningSecret(randomBytes);
  const body = JSON.stringify({ order: 42, note: 'ünïcode and "quotes"' });

  describe("the server's signatures verify with the standardwebhooks package", () => {
    it('with one secret', () => {
      const headers = webhookHeaders([secret], 'order-42-timeout', nowSeconds(), body);
      assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
    });

    it('with two signatures during a rotation, knowing either secret', () => {
      const headers = webhookHeaders([secret, oldSecret], 'order-42-timeout', nowSeconds(), body);
      assert.ok(headers['webhook-signature']?.includes(' '));
      for (const known of [secret, oldSecret])
        assert.deepEqual(new Webhook(known).verify(body, headers), JSON.parse(body));
    });

    it('with a non-JSON text body', () => {
      const text = 'order 42 timed out\n';
      const headers = webhookHeaders([secret], 'text-1', nowSeconds(), text);
      assert.equal(new Webhook(secret).verify(text, headers, { jsonParse: false }), undefined);
    });

    it('but not for a body that is not UTF-8: the JS package signs text, the receiver bytes', () => {
      // standardwebhooks 1.1.1 turns a Buffer payload into a string before hashing, replacing
      // invalid UTF-8 with U+FFFD, so a binary (payloadBase64) callback cannot be verified with
      // it; byte-based libraries and CallbackReceiver can, and `envelope: true` sends binary
      // payloads as base64 text inside JSON. Pinned so an upgrade that fixes it is noticed.
      const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
      const headers = webhookHeaders([secret], 'binary-1', nowSeconds(), bytes);
      assert.throws(() => new Webhook(secret).verify(bytes, headers), WebhookVerificationError);
      assert.equal(verifySignature(secret, headers, bytes).webhookId, 'binary-1');
    });

    it('and the package refuses a tampered one, like the receiver', () => {
      const headers = webhookHeaders([secret], 'order-42-timeout', nowSeconds(), body);
      assert.throws(
        () => new Webhook(secret).verify(`${body} `, headers),
        WebhookVerificationError,
      );
      assert.throws(() => new Webhook(oldSecret).verify(body, headers), WebhookVerificationError);
    });
  });

  describe("the standardwebhooks package's signatures are accepted by the receiver", () => {
    function signedByLibrary(payload: string, signingSecret: string): Record<string, string> {
      const timestamp = new Date();
      return {
        'webhook-id': 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
        'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
        'webhook-signature': new Webhook(signingSecret).sign(
          'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
          timestamp,
          payload,
        ),
      };
    }

    it('by verifySignature()', () => {
      const verified = verifySignature(secret, signedByLibrary(body, secret), body);
      assert.equal(verified.webhookId, 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W');
      assert.throws(
        () => verifySignature(oldSecret, signedByLibrary(body, secret), body),
        (error: unknown) => error instanceof VerificationError && error.code === 'bad_signature',
      );
    });

    it('by CallbackReceiver.verify() with the hourglass-* headers added', () => {
      const receiver = new CallbackReceiver({ secret: [oldSecret, secret] });
      const message = receiver.verify(
        {
          ...signedByLibrary(body, secret),
          'hourglass-id': 'order-42-timeout',
          'hourglass-app': 'shop',
          'hourglass-deliver-at': new Date().toISOString(),
          'hourglass-attempt': '1',
          'hourglass-callback-name': 'order.timeout',
        },
        body,
      );
      assert.equal(message.webhookId, 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W');
      assert.deepEqual(message.json(), JSON.parse(body));
    });

    it('for a secret given without the whsec_ prefix, as the libraries allow', () => {
      const bare = secret.slice('whsec_'.length);
      assert.doesNotThrow(() => verifySignature(bare, signedByLibrary(body, secret), body));
    });
  });
});
