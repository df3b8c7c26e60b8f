export * from './api-client.js';
export * from './errors.js';
export type * from './types.js';
