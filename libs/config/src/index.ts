/**
 * Node configuration: a zod schema, YAML files under config/ and environment overrides, parsed
 * and validated once at start-up. A bad value stops start-up with an error naming the key.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Cron } from 'croner';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

// 0 asks the OS for a free port (tests).
const port = z.number().int().min(0).max(65535);
const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port');

/** The cron options of `archive.scheduler`, shared with the job (libs/engine/src/retention.ts). */
export const ARCHIVE_CRON_OPTIONS = {
  paused: true,
  sloppyRanges: true,
  mode: '5-or-6-parts',
} as const;

/** null when croner accepts the expression (5 fields, or 6 with seconds first; Quartz's `?` and `0/3` too). */
export function cronProblem(expression: string): string | null {
  try {
    new Cron(expression, ARCHIVE_CRON_OPTIONS).stop();
    return null;
  } catch (error) {
    return `not a cron expression croner accepts (${(error as Error).message})`;
  }
}

// Days with fractions (0.5 is 12 hours), above 0 and at most 100 years.
const retentionDays = z.number().positive().max(36_500);

const appSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'app names are 1-64 of a-z 0-9 . _ -'),
  token: z.string().min(8, 'tokens are at least 8 characters'),
  topics: z.array(z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'not a valid Kafka topic name')),
});

export const configSchema = z.strictObject({
  node: z.strictObject({ id: z.string().regex(/^[A-Za-z0-9._-]{0,64}$/) }),
  http: z.strictObject({ host: z.string().min(1), port, advertisedUrl: z.string() }),
  grpc: z.strictObject({ host: z.string().min(1), port }),
  postgres: z.strictObject({
    url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL'),
    poolSize: z.number().int().min(2).max(500),
    statementTimeoutMs: z.number().int().min(100),
    groupCommit: z.strictObject({
      windowMs: z.number().min(0).max(50),
      maxMessages: z.number().int().min(1).max(10_000),
      maxInFlight: z.number().int().min(1).max(64),
    }),
  }),
  kafka: z.strictObject({
    brokers: z.array(hostPort).min(1),
    clientId: z.string().min(1),
    createTopics: z.boolean(),
    topicPartitions: z.number().int().min(1),
  }),
  etcd: z.strictObject({ endpoints: z.array(z.string().regex(/^https?:\/\//)).min(1) }),
  redis: z.strictObject({ url: z.string().regex(/^rediss?:\/\//), keyPrefix: z.string() }),
  cluster: z.strictObject({
    slots: z.number().int().min(1).max(65536),
    mode: z.enum(['standalone', 'etcd']),
    // At least 2: etcd raises shorter lease TTLs to its minimum (1.5 × the election timeout).
    leaseTtlSeconds: z.number().int().min(2).max(300),
    etcdPrefix: z
      .string()
      .regex(/^\/.*[^/]$|^\/$/, 'an absolute etcd key prefix without a trailing slash'),
    rebalanceDelayMs: z.number().int().min(0),
  }),
  core: z.strictObject({
    horizonMinutes: z.number().min(0.1).max(60),
    loaderIntervalMs: z.number().int().min(10),
    hintDrainIntervalMs: z.number().int().min(10),
    fireBatchSize: z.number().int().min(1).max(10000),
    fireConcurrency: z.number().int().min(1).max(64),
    claimAheadMs: z.number().int().min(0).max(1000),
    sweepIntervalMs: z.number().int().min(100),
    sweepGraceMs: z.number().int().min(0),
    overdueLoadLimit: z.number().int().min(1000),
  }),
  delivery: z.strictObject({
    maxAttempts: z.number().int().min(1),
    retryInitialMs: z.number().int().min(1),
    retryMaxMs: z.number().int().min(1),
    probeMaxMs: z.number().int().min(10),
    requestTimeoutMs: z.number().int().min(100),
    maxRequestBytes: z.number().int().min(1024),
  }),
  callbacks: z.strictObject({
    // CIDRs callbacks may connect to although they are not public (e.g. 127.0.0.0/8).
    allowNetworks: z.array(
      z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'expected a CIDR such as 10.0.0.0/8'),
    ),
    defaultTimeoutMs: z.number().int().min(1).max(60_000),
    maxInFlightPerHost: z.number().int().min(1).max(10_000),
    maxInFlightPerApp: z.number().int().min(1).max(100_000),
    maxConnectionsPerHost: z.number().int().min(1).max(10_000),
    maxMessagesInFlight: z.number().int().min(1).max(1_000_000),
    retry: z.strictObject({
      strategy: z.enum(['fixed', 'linear', 'exponential']),
      initialDelayMs: z.number().int().min(0),
      maxDelayMs: z
        .number()
        .int()
        .min(0)
        .max(30 * 86_400_000),
      maxAttempts: z.number().int().min(1).max(100),
      jitter: z.boolean(),
    }),
  }),
  limits: z.strictObject({
    maxPayloadBytes: z.number().int().min(1),
    // Targets one message may fan out to (Kafka topics and HTTP callbacks).
    maxTargets: z.number().int().min(1).max(64),
    maxDelayDays: z.number().min(0),
    maxBatchSize: z.number().int().min(1).max(10000),
    maxRequestBytes: z.number().int().min(1024),
    // Bounds of the input rules in libs/core (MAX_PAYLOAD_DEPTH_CEILING, MAX_TOPIC_PARTITIONS_CEILING).
    maxPayloadDepth: z.number().int().min(1).max(1000),
    maxTopicPartitions: z.number().int().min(1).max(10_000),
    maxSchedulesPerApp: z.number().int().min(0).max(10_000_000),
  }),
  // Recurring schedules (docs/adr/0009-materialising-occurrences.md).
  schedules: z.strictObject({
    passIntervalMs: z.number().int().min(100).max(60_000),
    misfireGraceMs: z.number().int().min(0),
  }),
  search: z.strictObject({
    scanRowsPerPage: z.number().int().min(100).max(1_000_000),
    cancelBatchSize: z.number().int().min(1).max(10_000),
    cancelBudgetMs: z.number().int().min(10).max(60_000),
  }),
  retention: z.strictObject({
    deliveredDays: retentionDays,
    cancelledDays: retentionDays,
    failedDays: retentionDays,
  }),
  archive: z.strictObject({
    scheduler: z.string().superRefine((value, ctx) => {
      const problem = cronProblem(value);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
    }),
    mode: z.enum(['delete', 'move']),
    retentionDays: z.number().int().min(1).max(36_500),
    batchSize: z.number().int().min(1).max(100_000),
    pauseMs: z.number().int().min(0).max(60_000),
    compactIntervalMs: z.number().int().min(100),
  }),
  auth: z.strictObject({ adminToken: z.string().min(8) }),
  quotas: z.strictObject({ failMode: z.enum(['open', 'closed']) }),
  apps: z.array(appSchema),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }),
});

export type HourglassConfig = z.infer<typeof configSchema>;

/** Tokens from config/default.yaml. Anyone can read them, so they are refused off loopback. */
export const WELL_KNOWN_TOKENS: readonly string[] = ['demo-token', 'admin-token'];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepMerge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isTree(current) && isTree(value) ? deepMerge(current, value) : value;
  }
  return out;
}

/** `HOURGLASS__HTTP__PORT=8082` → `{http: {port: 8082}}`. Values are YAML scalars or flow collections. */
export function envOverrides(env: NodeJS.ProcessEnv): Tree {
  let out: Tree = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('HOURGLASS__') || raw === undefined) continue;
    const path = name
      .slice('HOURGLASS__'.length)
      .split('__')
      .map((part) => part.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
    // Keys are camelCase in YAML; env names are upper snake case: HTTP__ADVERTISED_URL → advertisedUrl.
    let value: unknown;
    try {
      value = parseYaml(raw);
    } catch {
      value = raw;
    }
    let branch: Tree = { [path[path.length - 1] ?? '']: value };
    for (let i = path.length - 2; i >= 0; i--) branch = { [path[i] ?? '']: branch };
    out = deepMerge(out, branch);
  }
  return out;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface LoadConfigOptions {
  /** Directory holding default.yaml. @default <repo>/config */
  configDir?: string;
  /** More YAML files, applied in order over default.yaml. @default $HOURGLASS_CONFIG split on commas */
  files?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Applied last; used by tests and the local cluster launcher. */
  overrides?: Tree;
}

export function formatZodError(error: z.ZodError): string {
  return error.issues
    .map(
      (issue) => `  ${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`,
    )
    .join('\n');
}

/** Parses and validates a raw tree (already merged). Throws {@link ConfigError} naming each bad key. */
export function validateConfig(raw: unknown): HourglassConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`invalid configuration:\n${formatZodError(result.error)}`);
  }
  const config = result.data;
  if (!isLoopback(config.http.host) || !isLoopback(config.grpc.host)) {
    const known = [config.auth.adminToken, ...config.apps.map((app) => app.token)].filter((token) =>
      WELL_KNOWN_TOKENS.includes(token),
    );
    if (known.length > 0) {
      throw new ConfigError(
        'invalid configuration:\n  auth.adminToken / apps[].token: the well-known development tokens ' +
          `(${known.join(', ')}) are refused when listening on a non-loopback address; set your own`,
      );
    }
  }
  if (config.kafka.topicPartitions > config.limits.maxTopicPartitions) {
    throw new ConfigError(
      `invalid configuration:\n  kafka.topicPartitions: ${config.kafka.topicPartitions} is more than ` +
        `limits.maxTopicPartitions (${config.limits.maxTopicPartitions})`,
    );
  }
  const names = new Set<string>();
  for (const [index, app] of config.apps.entries()) {
    if (names.has(app.name))
      throw new ConfigError(
        `invalid configuration:\n  apps.${index}.name: duplicate app "${app.name}"`,
      );
    names.add(app.name);
  }
  return config;
}

/** The nearest `config/default.yaml` above `start` (works from src/ under tsx and from a bundle in dist/). */
function findConfigDir(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(resolve(dir, 'config/default.yaml'))) return resolve(dir, 'config');
    if (dirname(dir) === dir) return resolve(process.cwd(), 'config');
  }
}

export function loadConfig(options: LoadConfigOptions = {}): HourglassConfig {
  const env = options.env ?? process.env;
  const configDir = options.configDir ?? env.HOURGLASS_CONFIG_DIR ?? findConfigDir(__dirname);
  const files = [
    resolve(configDir, 'default.yaml'),
    ...(options.files ?? (env.HOURGLASS_CONFIG ? env.HOURGLASS_CONFIG.split(',') : [])).map(
      (file) => (isAbsolute(file) ? file : resolve(process.cwd(), file)),
    ),
  ];
  let tree: Tree = {};
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`cannot read configuration file ${file}: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && !isTree(parsed)) {
      throw new ConfigError(`configuration file ${file} must hold a mapping`);
    }
    tree = deepMerge(tree, parsed ?? {});
  }
  tree = deepMerge(tree, envOverrides(env));
  if (options.overrides) tree = deepMerge(tree, options.overrides);
  return validateConfig(tree);
}
