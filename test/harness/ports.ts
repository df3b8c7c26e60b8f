// Tests take free loopback ports from the same place the simulated clusters do,
// so a port handed to one is never handed to another in the same process.
export { freePort } from '../../src/providers/runtimes/kwok/processes.js';
