import { defineKind, f } from './declare.js';

// Reconciled by src/controllers/control-plane: a ControlPlaneInstance on a runtime installs a
// child control plane there (docs/operator-guide.md, child control planes).
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const ControlPlaneDefinition = defineKind({
  name: 'ControlPlaneDefinition',
  plural: 'control-plane-definitions',
  domain: 'control-plane',
  base: 'definition',
  reconciled: true,
  fields: {
    AuthEnabled: f.boolean({ default: true }),
    OnboardParent: f.boolean({ default: true }),
  },
});

export const ControlPlaneInstance = defineKind({
  name: 'ControlPlaneInstance',
  plural: 'control-plane-instances',
  domain: 'control-plane',
  base: 'instance',
  reconciled: true,
  // One control plane per namespace of a runtime: a second one is a 409, decided by a unique
  // index in the same statement as the insert (two concurrent creates cannot both win).
  uniqueTogether: ['KubernetesRuntimeInstanceID', 'Namespace'],
  // The child is installed into this Kubernetes namespace, so it must be a valid one.
  check: (fields) => {
    const ns = fields['Namespace'];
    if (typeof ns !== 'string' || NAMESPACE.test(ns)) return undefined;
    return `field ControlPlaneInstance.Namespace has invalid value ${JSON.stringify(ns.slice(0, 80))}: a Kubernetes namespace name is at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit`;
  },
  fields: {
    Namespace: f.string({ required: true }),
    IsSelf: f.boolean({ default: false }),
    CustomComponentInfo: f.json(),
    Genesis: f.boolean({ default: false }),
    ApiServerEndpoint: f.string(),
    CACert: f.string(),
    ClientCert: f.string(),
    ClientKey: f.string({ encrypted: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true, blocksDelete: true }),
    ParentControlPlaneInstanceID: f.id('ControlPlaneInstance'),
    ControlPlaneDefinitionID: f.id('ControlPlaneDefinition', { required: true, blocksDelete: true }),
  },
});
