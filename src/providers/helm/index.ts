// The helm provider: releases through the `helm` CLI (see releases.ts).
export * from './errors.js';
export * from './binary.js';
export * from './chart-source.js';
export * from './post-render.js';
export * from './releases.js';
export { HelmWorkspace, POST_RENDERER_SCRIPT, removeStaleWorkspaces } from './workspace.js';
