export * from './coordinator';
export * from './engine';
export * from './metrics';
export * from './service';
export * from './apps';
export * from './app-admin';
export * from './quota-gate';
export * from './app-delivery';
