// What `tptctl up --provider local` needs to register a default runtime: whether simulated
// clusters can run here, and the objects to create (a kwok definition and a default instance,
// which the control plane's runtime controller then starts).
import { buildHint, findKubeBinaries, KubeBinariesMissingError } from './kwok/binaries.js';

export type LocalRuntimeAvailability = { available: true; binDir: string } | { available: false; message: string };

/** Whether this machine has the binaries for a simulated (kwok) cluster; if not, how to get them. */
export function localRuntimeAvailability(): LocalRuntimeAvailability {
  try {
    return { available: true, binDir: findKubeBinaries().dir };
  } catch (err) {
    if (!(err instanceof KubeBinariesMissingError)) throw err;
    return {
      available: false,
      message: `no local Kubernetes runtime was registered: the binaries for a simulated cluster are missing.\n${buildHint()}\nThen register one with a KubernetesRuntimeDefinition (InfraProvider: kwok) and a KubernetesRuntimeInstance, or run \`tptctl up\` again.`,
    };
  }
}

/**
 * The objects of a default local runtime named `name` (the instance needs the definition's ID).
 * Like upstream's genesis runtime it is the default runtime and the control plane's host
 * (`ThreeportControlPlaneHost`): upstream's tooling looks the host up by that flag.
 */
export function localRuntimeObjects(name: string): {
  definition: { Name: string; InfraProvider: 'kwok' };
  instance: (definitionId: number) => {
    Name: string;
    Location: 'Local';
    DefaultRuntime: true;
    ThreeportControlPlaneHost: true;
    KubernetesRuntimeDefinitionID: number;
  };
} {
  return {
    definition: { Name: name, InfraProvider: 'kwok' },
    instance: (definitionId) => ({
      Name: name,
      Location: 'Local',
      DefaultRuntime: true,
      ThreeportControlPlaneHost: true,
      KubernetesRuntimeDefinitionID: definitionId,
    }),
  };
}
