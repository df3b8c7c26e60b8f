import { defineKind, f } from './declare.js';

export const Event = defineKind({
  name: 'Event',
  plural: 'events',
  domain: 'events',
  base: 'plain',
  reconciled: false,
  description: 'Something a controller did or failed to do, attached to objects through AttachedObjectReferences.',
  fields: {
    Reason: f.string(),
    Note: f.string(),
    Type: f.string({ enum: ['Normal', 'Warning'] }),
    Count: f.integer({ default: 1 }),
    EventTime: f.time(),
    LastObservedTime: f.time(),
    ReportingController: f.string(),
    ReportingInstance: f.string(),
    Action: f.string(),
    AttachedObjectReferenceID: f.id('AttachedObjectReference'),
  },
});

export const AttachedObjectReference = defineKind({
  name: 'AttachedObjectReference',
  plural: 'attached-object-references',
  domain: 'events',
  base: 'plain',
  reconciled: false,
  description: 'Links an object (e.g. v0.WorkloadInstance 5) to another it owns (an Event, a GatewayInstance).',
  fields: {
    ObjectType: f.string({ required: true }),
    ObjectID: f.id('', { required: true }),
    AttachedObjectType: f.string({ required: true }),
    AttachedObjectID: f.id('', { required: true }),
  },
  uniqueTogether: ['ObjectType', 'ObjectID', 'AttachedObjectType', 'AttachedObjectID'],
  // Event de-duplication (spec §1.8) runs on every reconcile and starts from the object's
  // references; every object's success events share Reason and Note, so containment on the
  // GIN index alone would touch them all.
  lookupIndexes: [['ObjectType', 'ObjectID', 'AttachedObjectType']],
});
