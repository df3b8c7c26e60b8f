import { defineKind, f } from './declare.js';
import { definitionPortsProblem, portProblem } from './gateway-ports.js';

export const DomainNameDefinition = defineKind({
  name: 'DomainNameDefinition',
  plural: 'domain-name-definitions',
  domain: 'gateway',
  base: 'definition',
  reconciled: false,
  reconciliationFields: true,
  fields: {
    Domain: f.string({ required: true }),
    Zone: f.string({ required: true }),
    AdminEmail: f.string({ required: true }),
  },
});

export const DomainNameInstance = defineKind({
  name: 'DomainNameInstance',
  plural: 'domain-name-instances',
  domain: 'gateway',
  base: 'instance',
  reconciled: true,
  fields: {
    DomainNameDefinitionID: f.id('DomainNameDefinition', { required: true, blocksDelete: true }),
    // Upstream's query tag for this field is `workloadresourceinstanceid`; kept for compatibility.
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true, query: 'workloadresourceinstanceid' }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
  },
});

export const GatewayDefinition = defineKind({
  name: 'GatewayDefinition',
  plural: 'gateway-definitions',
  domain: 'gateway',
  base: 'definition',
  reconciled: true,
  fields: {
    HttpPorts: f.association('GatewayHttpPort', 'GatewayDefinitionID'),
    TcpPorts: f.association('GatewayTcpPort', 'GatewayDefinitionID'),
    DomainNameDefinitionID: f.id('DomainNameDefinition'),
    SubDomain: f.string(),
    ServiceName: f.string(),
    WorkloadDefinitionID: f.id('WorkloadDefinition'),
  },
  // Nested ports: each in range, none used twice, TLS only with a domain name (the certificate's host).
  check: (gd) => definitionPortsProblem(gd),
});

export const GatewayHttpPort = defineKind({
  name: 'GatewayHttpPort',
  plural: 'gateway-http-ports',
  domain: 'gateway',
  base: 'plain',
  reconciled: false,
  fields: {
    GatewayDefinitionID: f.id('GatewayDefinition', { required: true }),
    Port: f.integer({ required: true }),
    Path: f.string({ default: '/' }),
    TLSEnabled: f.boolean({ default: false }),
    HTTPSRedirect: f.boolean({ default: false }),
  },
  check: (p) => portProblem('GatewayHttpPort', p),
});

export const GatewayTcpPort = defineKind({
  name: 'GatewayTcpPort',
  plural: 'gateway-tcp-ports',
  domain: 'gateway',
  base: 'plain',
  reconciled: false,
  fields: {
    GatewayDefinitionID: f.id('GatewayDefinition', { required: true }),
    Port: f.integer({ required: true }),
    TLSEnabled: f.boolean({ default: false }),
  },
  check: (p) => portProblem('GatewayTcpPort', p),
});

export const GatewayInstance = defineKind({
  name: 'GatewayInstance',
  plural: 'gateway-instances',
  domain: 'gateway',
  base: 'instance',
  reconciled: true,
  fields: {
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    GatewayDefinitionID: f.id('GatewayDefinition', { required: true, blocksDelete: true }),
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true, query: 'workloadresourceinstanceid' }),
  },
});
