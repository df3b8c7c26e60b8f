import { defineKind, f } from './declare.js';

/** Why these kinds are refused (see KindInput.unavailable); removed when their controller lands. */
const CHILD_CONTROL_PLANES_UNAVAILABLE =
  'child control planes are not installed by this control plane yet; only registration (Reconciled: true, as tptctl up does for the genesis control plane) is accepted';

export const ControlPlaneDefinition = defineKind({
  name: 'ControlPlaneDefinition',
  plural: 'control-plane-definitions',
  domain: 'control-plane',
  base: 'definition',
  reconciled: true,
  unavailable: CHILD_CONTROL_PLANES_UNAVAILABLE,
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
  unavailable: CHILD_CONTROL_PLANES_UNAVAILABLE,
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
