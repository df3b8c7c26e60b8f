// Every resource Threeport creates in AWS carries these tags. They let a
// resumed run find what a crashed run created, and let deletion find
// everything that belongs to a stack even if the inventory missed it.
import type { Filter, ResourceType, TagSpecification } from '@aws-sdk/client-ec2';

export const STACK_TAG = 'threeport:stack';
export const RESOURCE_TAG = 'threeport:resource';
export const MANAGED_BY_TAG = 'threeport:managed-by';

export function stackTags(stack: string, resource: string, extra: Record<string, string> = {}): Record<string, string> {
  return { Name: `${stack}-${resource}`, [STACK_TAG]: stack, [RESOURCE_TAG]: resource, [MANAGED_BY_TAG]: 'threeport', ...extra };
}

export function tagList(tags: Record<string, string>): Array<{ Key: string; Value: string }> {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export function ec2TagSpec(type: ResourceType, stack: string, resource: string, extra: Record<string, string> = {}): TagSpecification[] {
  return [{ ResourceType: type, Tags: tagList(stackTags(stack, resource, extra)) }];
}

/** EC2 Describe* filters that match exactly one step's resources of one stack. */
export function ec2TagFilters(stack: string, resource: string): Filter[] {
  return [
    { Name: `tag:${STACK_TAG}`, Values: [stack] },
    { Name: `tag:${RESOURCE_TAG}`, Values: [resource] },
  ];
}

export function tagValue(tags: ReadonlyArray<{ Key?: string | undefined; Value?: string | undefined }> | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** A name usable in AWS identifiers: lower-case letters, digits and dashes. */
export function slug(text: string, max: number): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  return s.slice(0, max).replace(/-$/, '') || 'x';
}

/** The stack name of one Threeport object: `tp-<name>-<id>`, at most 50 characters, stable for its life. */
export function stackName(name: string | undefined, id: number | string): string {
  const suffix = `-${id}`;
  return `tp-${slug(name ?? 'object', 50 - 3 - suffix.length)}${suffix}`;
}
