import assert from 'node:assert/strict';
import { ConfigError, envOverrides, loadConfig } from '@hourglass/config';

describe('config', () => {
  it('loads config/default.yaml with the documented defaults', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.http.port, 8081);
    assert.equal(config.cluster.slots, 256);
    assert.equal(config.core.horizonMinutes, 5);
    assert.deepEqual(config.apps[0], {
      name: 'demo',
      token: 'demo-token',
      topics: ['demo.events'],
    });
  });

  it('applies HOURGLASS__ environment overrides, parsed as YAML, camel-casing snake names', () => {
    const overrides = envOverrides({
      HOURGLASS__HTTP__PORT: '9999',
      HOURGLASS__HTTP__ADVERTISED_URL: 'http://x:1',
      HOURGLASS__KAFKA__BROKERS: '[a:1, b:2]',
      OTHER: 'ignored',
    });
    assert.deepEqual(overrides, {
      http: { port: 9999, advertisedUrl: 'http://x:1' },
      kafka: { brokers: ['a:1', 'b:2'] },
    });
    const config = loadConfig({ env: { HOURGLASS__HTTP__PORT: '9999' } });
    assert.equal(config.http.port, 9999);
  });

  it('loads the production template in deploy/ with its secrets from the environment', () => {
    const template = new URL('../../../../deploy/hourglass.production.yaml', import.meta.url)
      .pathname;
    const config = loadConfig({
      env: {
        HOURGLASS_CONFIG: template,
        HOURGLASS__POSTGRES__URL: 'postgres://hourglass@db.internal:5432/hourglass',
        HOURGLASS__REDIS__URL: 'redis://cache.internal:6379',
        HOURGLASS__AUTH__ADMIN_TOKEN: 'a-long-random-admin-token',
      },
    });
    assert.equal(config.cluster.mode, 'etcd');
    assert.equal(config.http.host, '0.0.0.0');
    assert.deepEqual(config.apps, []);
    assert.equal(config.auth.adminToken, 'a-long-random-admin-token');
  });

  it('bounds the input limits: maxPayloadDepth 1-1000, maxTopicPartitions 1-10000 and >= kafka.topicPartitions', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.limits.maxPayloadDepth, 64);
    assert.equal(config.limits.maxTopicPartitions, 64);
    for (const [limits, key] of [
      [{ maxPayloadDepth: 0 }, 'limits.maxPayloadDepth'],
      [{ maxPayloadDepth: 1001 }, 'limits.maxPayloadDepth'],
      [{ maxTopicPartitions: 10_001 }, 'limits.maxTopicPartitions'],
      [{ maxTopicPartitions: 2 }, 'kafka.topicPartitions'],
    ] as const) {
      assert.throws(
        () => loadConfig({ env: {}, overrides: { limits } }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(key),
        JSON.stringify(limits),
      );
    }
  });

  it('names the key of a bad value', () => {
    assert.throws(
      () => loadConfig({ env: { HOURGLASS__HTTP__PORT: 'eighty' } }),
      (error: unknown) => error instanceof ConfigError && /http\.port/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ env: {}, overrides: { core: { horizonMinutes: -1 } } }),
      (error: unknown) =>
        error instanceof ConfigError && /core\.horizonMinutes/.test(error.message),
    );
  });

  it('rejects unknown keys, naming them', () => {
    assert.throws(
      () => loadConfig({ env: {}, overrides: { http: { prot: 1 } } }),
      (error: unknown) => error instanceof ConfigError && /prot/.test(error.message),
    );
  });

  it('refuses the well-known tokens on a non-loopback address', () => {
    assert.throws(
      () => loadConfig({ env: {}, overrides: { http: { host: '0.0.0.0' } } }),
      (error: unknown) => error instanceof ConfigError && /well-known/.test(error.message),
    );
    const config = loadConfig({
      env: {},
      overrides: {
        http: { host: '0.0.0.0' },
        grpc: { host: '0.0.0.0' },
        auth: { adminToken: 'a-real-secret-token' },
        apps: [{ name: 'shop', token: 'another-real-secret', topics: ['orders'] }],
      },
    });
    assert.equal(config.http.host, '0.0.0.0');
  });
});
