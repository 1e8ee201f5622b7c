export * from './errors';
export * from './ids';
export * from './message';
export * from './ports';
export * from './slots';
export * from './state-machine';
export * from './wheel';
export * from './assignment';
