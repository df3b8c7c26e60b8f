// OnboardParent (spec §3.9): once a child control plane answers, the parent copies into the
// child's API what the child needs to know about where it lives and where it comes from, as
// upstream does:
//   - the runtime it runs on: KubernetesRuntimeDefinition and Instance (secrets decrypted here and
//     re-sent, so the child encrypts them with its own key);
//   - its own ControlPlaneDefinition, and a ControlPlaneInstance with IsSelf: true;
//   - the genesis control plane: its definition, runtime and instance (IsSelf: false).
// Every copy is created `Reconciled: true` (it describes what exists; the child has nothing to
// do for it). Copies are found by name before they are created, so a repeated onboarding (a
// retried or resynced reconcile) creates nothing twice.
//
// Not copied, unlike upstream: AwsAccount and the AwsEks runtime objects, since children are only
// installed on simulated runtimes so far (EKS runtimes are refused before anything is done).
import type { ThreeportClient } from '../../client/api-client.js';
import type { AnyObject } from '../../client/types.js';
import { MODEL_FIELDS, RECONCILIATION_FIELDS, type Kind } from '../../kinds/declare.js';
import { controlPlane, kubernetesRuntime } from '../../kinds/index.js';
import type { JsonObject } from '../../kinds/validate.js';
import type { ObjectStore } from '../../store/object-store.js';

const { KubernetesRuntimeDefinition: KRD, KubernetesRuntimeInstance: KRI } = kubernetesRuntime;
const { ControlPlaneDefinition: CPD, ControlPlaneInstance: CPI } = controlPlane;

const SKIPPED = new Set<string>([...MODEL_FIELDS, ...Object.keys(RECONCILIATION_FIELDS)]);

/**
 * The fields of a stored object that another control plane can take as they are: no IDs (they
 * name rows of this database; the caller maps the ones it needs), no reconciliation state, no
 * nested associations; encrypted fields decrypted.
 */
export function portableFields(kind: Kind, object: JsonObject, store: ObjectStore): JsonObject {
  const out: JsonObject = {};
  for (const [field, spec] of Object.entries(kind.allFields)) {
    if (SKIPPED.has(field) || spec.type === 'id' || spec.type === 'association' || spec.serverSet || spec.transient) continue;
    const value = object[field];
    if (value === undefined || value === null) continue;
    out[field] = spec.encrypted && typeof value === 'string' ? store.decrypt(value) : value;
  }
  return out;
}

/** The child's object of this kind and name, created (Reconciled) when missing. */
async function ensureCopy(child: ThreeportClient, kind: Kind, fields: JsonObject): Promise<AnyObject> {
  const name = String(fields['Name']);
  const existing = (await child.findByName(kind, name)) as AnyObject | undefined;
  if (existing) return existing;
  return (await child.create(kind, { ...fields, Reconciled: true } as never)) as AnyObject;
}

export interface OnboardInput {
  store: ObjectStore;
  /** The child's API. */
  child: ThreeportClient;
  /** As stored in the parent. */
  instance: JsonObject;
  definition: JsonObject;
  runtimeInstance: JsonObject;
  runtimeDefinition: JsonObject;
  /** The child's connection fields as the parent wrote them onto the instance (plain ClientKey). */
  connection: JsonObject;
}

export interface OnboardResult {
  /** ID of the child's own (IsSelf) ControlPlaneInstance in the child's API. */
  selfId: number;
  /** ID of the genesis ControlPlaneInstance's copy in the child's API, when the parent knows one. */
  genesisId: number | undefined;
  copied: string[];
}

/** Copies the objects; see the module comment. */
export async function onboardParent(input: OnboardInput): Promise<OnboardResult> {
  const { store, child } = input;
  const copied: string[] = [];
  const copy = async (kind: Kind, fields: JsonObject): Promise<AnyObject> => {
    const o = await ensureCopy(child, kind, fields);
    copied.push(`${kind.name} ${JSON.stringify(fields['Name'])}`);
    return o;
  };

  // The runtime the child lives on.
  const runtimeDef = await copy(KRD, portableFields(KRD, input.runtimeDefinition, store));
  const runtime = await copy(KRI, { ...portableFields(KRI, input.runtimeInstance, store), KubernetesRuntimeDefinitionID: runtimeDef.ID });

  // The genesis control plane: its definition, runtime and instance, reusing copies made above.
  let genesisId: number | undefined;
  const [genesis] = await store.find(CPI, { Genesis: true });
  const ownDefinitionId = Number(input.definition['ID']);
  if (genesis && Number(genesis['ID']) !== Number(input.instance['ID'])) {
    const genesisDef = await store.getObject(CPD, Number(genesis['ControlPlaneDefinitionID']));
    const genDefCopy = await copy(CPD, portableFields(CPD, genesisDef, store));
    let genRuntimeId = runtime.ID;
    if (Number(genesis['KubernetesRuntimeInstanceID']) !== Number(input.runtimeInstance['ID'])) {
      const genRuntime = await store.getObject(KRI, Number(genesis['KubernetesRuntimeInstanceID']));
      let genRuntimeDefId = runtimeDef.ID;
      if (Number(genRuntime['KubernetesRuntimeDefinitionID']) !== Number(input.runtimeDefinition['ID'])) {
        const d = await store.getObject(KRD, Number(genRuntime['KubernetesRuntimeDefinitionID']));
        genRuntimeDefId = (await copy(KRD, portableFields(KRD, d, store))).ID;
      }
      genRuntimeId = (await copy(KRI, { ...portableFields(KRI, genRuntime, store), KubernetesRuntimeDefinitionID: genRuntimeDefId })).ID;
    }
    const g = await copy(CPI, {
      ...portableFields(CPI, genesis, store),
      IsSelf: false,
      ControlPlaneDefinitionID: genDefCopy.ID,
      KubernetesRuntimeInstanceID: genRuntimeId,
    });
    genesisId = g.ID;
  }

  // The child itself. Its parent in the child's own records is the genesis copy when the parent is
  // the genesis control plane (the only parent it has a copy of).
  const ownDef =
    genesis && Number(genesis['ControlPlaneDefinitionID']) === ownDefinitionId
      ? ((await child.findByName(CPD, String(input.definition['Name']))) as AnyObject)
      : await copy(CPD, portableFields(CPD, input.definition, store));
  const [parentSelf] = await store.find(CPI, { IsSelf: true });
  const self = await copy(CPI, {
    ...portableFields(CPI, input.instance, store),
    ...input.connection,
    IsSelf: true,
    Genesis: false,
    ControlPlaneDefinitionID: ownDef.ID,
    KubernetesRuntimeInstanceID: runtime.ID,
    ...(genesisId !== undefined && parentSelf && genesis && Number(parentSelf['ID']) === Number(genesis['ID'])
      ? { ParentControlPlaneInstanceID: genesisId }
      : {}),
  });
  return { selfId: self.ID, genesisId, copied };
}
