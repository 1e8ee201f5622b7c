export * from './app';
export * from './admin-cluster';
export * from './admin';
export * from './openapi';
