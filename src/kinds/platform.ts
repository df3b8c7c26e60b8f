import { defineKind, f } from './declare.js';

export const Profile = defineKind({
  name: 'Profile',
  plural: 'profiles',
  domain: 'platform',
  base: 'plain',
  reconciled: false,
  fields: { Name: f.string({ required: true }) },
});

export const Tier = defineKind({
  name: 'Tier',
  plural: 'tiers',
  domain: 'platform',
  base: 'plain',
  reconciled: false,
  fields: { Name: f.string({ required: true }), Criticality: f.integer({ required: true }) },
});

export const LogBackend = defineKind({
  name: 'LogBackend',
  plural: 'log-backends',
  domain: 'platform',
  base: 'plain',
  reconciled: false,
  fields: { Name: f.string({ required: true }), Destination: f.string({ required: true }) },
});

export const LogStorageDefinition = defineKind({
  name: 'LogStorageDefinition',
  plural: 'log-storage-definitions',
  domain: 'platform',
  base: 'definition',
  reconciled: false,
  fields: { LogBackendIDs: f.json({ description: 'IDs of the LogBackends logs are sent to.' }) },
});

export const LogStorageInstance = defineKind({
  name: 'LogStorageInstance',
  plural: 'log-storage-instances',
  domain: 'platform',
  base: 'instance',
  reconciled: false,
  fields: { LogStorageDefinitionID: f.id('LogStorageDefinition', { required: true, blocksDelete: true }) },
});

export const ModuleApi = defineKind({
  name: 'ModuleApi',
  plural: 'module-apis',
  domain: 'platform',
  base: 'plain',
  reconciled: false,
  description: 'An extension API that the server reverse-proxies to.',
  fields: { Name: f.string({ required: true }), Endpoint: f.string({ required: true }) },
});

export const ModuleApiRoute = defineKind({
  name: 'ModuleApiRoute',
  plural: 'module-api-routes',
  domain: 'platform',
  base: 'plain',
  reconciled: false,
  fields: {
    Path: f.string({ required: true }),
    ModuleApiID: f.id('ModuleApi', { required: true, blocksDelete: true }),
  },
});
