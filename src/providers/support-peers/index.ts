// Support-service peers (Gateway API via traefik, cert-manager, external-dns, external-secrets,
// and the test-only pebble and CoreDNS) run as supervised host processes for simulated runtimes.
// See docs/support-services.md.
export * from './binaries.js';
export * from './crds.js';
export * from './launch.js';
export * from './supervisor.js';
