// Route 53 reads for DNS records (DomainNameInstance, docs/support-services.md): which hosted zone
// serves a domain, and the records external-dns owns in it. external-dns writes the records; the
// control plane only reads, to find the zone before it starts external-dns and to tell when a
// record is published or gone.
import {
  ListHostedZonesCommand,
  ListResourceRecordSetsCommand,
  type ListResourceRecordSetsCommandOutput,
  type ResourceRecordSet,
  type Route53Client,
} from '@aws-sdk/client-route-53';

export interface HostedZone {
  /** Without the `/hostedzone/` prefix, as external-dns's --zone-id-filter takes it. */
  id: string;
  /** Without the trailing dot. */
  name: string;
  private: boolean;
}

/** `Example.COM.` → `example.com`. */
export function dnsName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** Whether `host` is `domain` or a name under it. */
export function isWithin(host: string, domain: string): boolean {
  const h = dnsName(host);
  const d = dnsName(domain);
  return h === d || h.endsWith(`.${d}`);
}

/**
 * The hosted zone that serves `domain`: the zone named like it or, failing that, the closest
 * parent zone (a zone `example.com` serves `shop.example.com`). `zoneType` narrows it to public or
 * private zones. Undefined when no zone in the account serves the domain.
 */
export async function findHostedZone(route53: Route53Client, domain: string, zoneType?: 'public' | 'private'): Promise<HostedZone | undefined> {
  let best: HostedZone | undefined;
  let marker: string | undefined;
  do {
    const page = await route53.send(new ListHostedZonesCommand({ ...(marker ? { Marker: marker } : {}) }));
    for (const z of page.HostedZones ?? []) {
      if (!z.Id || !z.Name) continue;
      const zone = { id: z.Id.replace(/^\/hostedzone\//, ''), name: dnsName(z.Name), private: z.Config?.PrivateZone === true };
      if (zoneType && zone.private !== (zoneType === 'private')) continue;
      if (!isWithin(domain, zone.name)) continue;
      if (!best || zone.name.length > best.name.length) best = zone;
    }
    marker = page.IsTruncated ? page.NextMarker : undefined;
  } while (marker);
  return best;
}

/** Every record set of a zone. */
export async function listRecordSets(route53: Route53Client, zoneId: string): Promise<ResourceRecordSet[]> {
  const out: ResourceRecordSet[] = [];
  let next: { name?: string; type?: string; id?: string } | undefined = {};
  while (next) {
    const page: ListResourceRecordSetsCommandOutput = await route53.send(
      new ListResourceRecordSetsCommand({
        HostedZoneId: zoneId,
        ...(next.name ? { StartRecordName: next.name } : {}),
        ...(next.type ? { StartRecordType: next.type as never } : {}),
        ...(next.id ? { StartRecordIdentifier: next.id } : {}),
      }),
    );
    out.push(...(page.ResourceRecordSets ?? []));
    next = page.IsTruncated ? { ...(page.NextRecordName ? { name: page.NextRecordName } : {}), ...(page.NextRecordType ? { type: page.NextRecordType } : {}), ...(page.NextRecordIdentifier ? { id: page.NextRecordIdentifier } : {}) } : undefined;
  }
  return out;
}

/**
 * The host names whose records external-dns's TXT registry says `ownerId` owns: the names of the
 * TXT records whose value carries `external-dns/owner=<ownerId>`, with the record-type prefix of
 * the registry's newer name format (`a-`, `cname-`, ...) removed.
 */
export function ownedHosts(records: readonly ResourceRecordSet[], ownerId: string): Set<string> {
  const owned = new Set<string>();
  const marker = `external-dns/owner=${ownerId}`;
  for (const r of records) {
    if (r.Type !== 'TXT' || !r.Name) continue;
    // The owner is the whole value up to the next comma: owner "a" must not match owner "ab".
    const values = (r.ResourceRecords ?? []).map((v) => (v.Value ?? '').replace(/^"|"$/g, ''));
    if (!values.some((v) => v.split(',').includes(marker))) continue;
    owned.add(dnsName(r.Name).replace(/^(a|aaaa|cname|ns|mx|srv|txt)-/, ''));
  }
  return owned;
}

/** The values of the A record set of `host` (empty when there is none). */
export function aRecordValues(records: readonly ResourceRecordSet[], host: string): string[] {
  const name = dnsName(host);
  const set = records.find((r) => r.Type === 'A' && r.Name !== undefined && dnsName(r.Name) === name);
  return (set?.ResourceRecords ?? []).map((v) => v.Value ?? '').filter((v) => v !== '');
}
