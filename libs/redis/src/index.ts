/** @hourglass/redis: quota counters and the app metadata cache on Redis (ioredis). */
export { RedisAdapter } from './redis';
export type { RedisAdapterOptions } from './redis';
export { CACHE_VERSION, keyScheme } from './keys';
export type { KeyScheme } from './keys';
