import { defineKind, f } from './declare.js';

export const TerraformDefinition = defineKind({
  name: 'TerraformDefinition',
  plural: 'terraform-definitions',
  domain: 'terraform',
  base: 'definition',
  reconciled: true,
  fields: {
    ConfigDir: f.string({ required: true, description: 'The contents of every .tf file of the config directory.' }),
  },
});

export const TerraformInstance = defineKind({
  name: 'TerraformInstance',
  plural: 'terraform-instances',
  domain: 'terraform',
  base: 'instance',
  reconciled: true,
  fields: {
    AwsAccountID: f.id('AwsAccount', { required: true }),
    VarsDocument: f.string({ encrypted: true }),
    StateDocument: f.string({ encrypted: true, observed: true }),
    Outputs: f.string({ encrypted: true, observed: true }),
    // Upstream's query tag for this field is `workloaddefinitionid`; kept for compatibility.
    TerraformDefinitionID: f.id('TerraformDefinition', { required: true, blocksDelete: true, query: 'workloaddefinitionid' }),
  },
});
