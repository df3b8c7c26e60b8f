export * from './errors.js';
export * from './connection.js';
export * from './client.js';
export * from './clients.js';
export type { KubeWatch, WatchEvent, WatchEventType, WatchOptions } from './watch.js';
