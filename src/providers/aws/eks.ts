// The EKS runtime stack (spec §3.3 "EKS Created"): network, IAM, cluster,
// OIDC provider for IRSA and the default node group, as an ordered list of
// idempotent steps (see inventory.ts).
//
//   availability-zones   the ZoneCount zones chosen, remembered so a resume uses the same ones
//   vpc                  10.0.0.0/16, DNS support and hostnames on
//   internet-gateway     attached to the VPC
//   subnet-public-<i>    10.0.(128+16i).0/20 in zone i, public IPs on launch, tagged for ELBs
//   subnet-private-<i>   10.0.(32i).0/19 in zone i, tagged for internal ELBs
//   elastic-ip           for the NAT gateway
//   nat-gateway          in subnet-public-0
//   route-table-public   0.0.0.0/0 → internet gateway, every public subnet
//   route-table-private  0.0.0.0/0 → NAT gateway, every private subnet
//   security-group       cluster security group, all traffic within the group
//   cluster-role         IAM role for the EKS control plane
//   node-role            IAM role for the nodes
//   cluster              the EKS cluster (waits for ACTIVE)
//   oidc-provider        IAM OIDC provider of the cluster's issuer (IRSA)
//   node-group           the default managed node group (waits for ACTIVE)
import {
  AllocateAddressCommand,
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateInternetGatewayCommand,
  CreateNatGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteInternetGatewayCommand,
  DeleteNatGatewayCommand,
  DeleteRouteTableCommand,
  DeleteSecurityGroupCommand,
  DeleteSubnetCommand,
  DeleteVpcCommand,
  DescribeAddressesCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInternetGatewaysCommand,
  DescribeNatGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  ModifySubnetAttributeCommand,
  ModifyVpcAttributeCommand,
  ReleaseAddressCommand,
  type RouteTable,
} from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateNodegroupCommand,
  DeleteClusterCommand,
  DeleteNodegroupCommand,
  DescribeClusterCommand,
  DescribeNodegroupCommand,
  type Cluster,
  type Nodegroup,
} from '@aws-sdk/client-eks';
import {
  CreateOpenIDConnectProviderCommand,
  DeleteOpenIDConnectProviderCommand,
  GetOpenIDConnectProviderCommand,
  ListOpenIDConnectProvidersCommand,
} from '@aws-sdk/client-iam';
import { hasCode, isDependencyViolation, isNotFound, ProvisioningError } from './errors.js';
import { newInventory, runCreate, runDelete, type Step, type ResourceInventory, type EnsureResult, type RemoveResult, type InventoryEntry, type RunOptions, type RunResult } from './inventory.js';
import type { AwsSession } from './provider.js';
import { ensureRole, removeRole, type RoleSpec } from './iam.js';
import { ec2TagFilters, ec2TagSpec, stackTags, STACK_TAG, tagList } from './tags.js';

export interface EksSpec {
  zoneCount: number;
  instanceType: string;
  initialSize: number;
  minSize: number;
  maxSize: number;
  /** Kubernetes version of the control plane; default: EKS's default. */
  kubernetesVersion?: string;
}

export interface EksPollIntervals {
  clusterMs: number;
  nodeGroupMs: number;
  natGatewayMs: number;
  /** Waits for deletions (node group, cluster, NAT gateway) and for dependencies to clear. */
  deleteMs: number;
  /** IAM is eventually consistent: a role just created may not be assumable for a few seconds. */
  iamPropagationMs: number;
}

/** Upstream polls EKS creation every 90 s and deletion every 60 s (spec §1.4); we look a little more often. */
export const DEFAULT_EKS_POLL: EksPollIntervals = {
  clusterMs: 30_000,
  nodeGroupMs: 30_000,
  natGatewayMs: 10_000,
  deleteMs: 15_000,
  iamPropagationMs: 10_000,
};

export interface EksContext {
  session: AwsSession;
  stack: string;
  spec: EksSpec;
  poll: EksPollIntervals;
  signal?: AbortSignal;
}

export const VPC_CIDR = '10.0.0.0/16';
export const MAX_ZONES = 4;
export const DEFAULT_NODE_GROUP = 'default';
/** Root CA thumbprint EKS OIDC issuers chain to; IAM ignores it for EKS issuers but older APIs require one. */
const OIDC_THUMBPRINT = '9e99a48a9960b14926bb7f3b02e22da2b0ab7280';

export function privateSubnetCidr(i: number): string {
  return `10.0.${32 * i}.0/19`;
}
export function publicSubnetCidr(i: number): string {
  return `10.0.${128 + 16 * i}.0/20`;
}

export function clusterName(stack: string): string {
  return stack;
}

function opts(ctx: EksContext): { abortSignal?: AbortSignal } {
  return ctx.signal ? { abortSignal: ctx.signal } : {};
}

function entryOf(inv: ResourceInventory, key: string, what: string): InventoryEntry {
  const e = inv.resources[key];
  if (!e) throw new Error(`the inventory has no ${what} (${key}) yet; the steps ran out of order`);
  return e;
}

function zonesOf(inv: ResourceInventory): string[] {
  return (entryOf(inv, 'availability-zones', 'availability zones')['zones'] as string[] | undefined) ?? [];
}

const done = (): RemoveResult => ({ gone: true });
const waiting = (waitingFor: string, pollMs: number): RemoveResult => ({ gone: false, waitingFor, pollMs });

/** Runs a delete call; NotFound means it is already gone. Dependencies still in place mean "later". */
async function tolerant(call: () => Promise<unknown>): Promise<'ok' | 'gone' | 'busy'> {
  try {
    await call();
    return 'ok';
  } catch (err) {
    if (isNotFound(err)) return 'gone';
    if (isDependencyViolation(err)) return 'busy';
    throw err;
  }
}

// ---- network ------------------------------------------------------------------

const zonesStep: Step<EksContext> = {
  key: 'availability-zones',
  title: 'availability zones',
  async ensure(ctx) {
    const out = await ctx.session.ec2.send(
      new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'state', Values: ['available'] }] }),
      opts(ctx),
    );
    const zones = (out.AvailabilityZones ?? [])
      .filter((z) => (z.ZoneType ?? 'availability-zone') === 'availability-zone' && z.ZoneName)
      .map((z) => z.ZoneName!)
      .sort();
    if (zones.length < ctx.spec.zoneCount) {
      throw new ProvisioningError(
        `region ${ctx.session.region} has ${zones.length} available zones (${zones.join(', ') || 'none'}); ZoneCount asks for ${ctx.spec.zoneCount}`,
      );
    }
    return { entry: { id: ctx.session.region, ready: true, zones: zones.slice(0, ctx.spec.zoneCount) } };
  },
  async remove() {
    return done();
  },
};

const vpcStep: Step<EksContext> = {
  key: 'vpc',
  title: 'VPC',
  async ensure(ctx) {
    const found = await ctx.session.ec2.send(new DescribeVpcsCommand({ Filters: ec2TagFilters(ctx.stack, 'vpc') }), opts(ctx));
    let vpc = found.Vpcs?.[0];
    if (!vpc) {
      vpc = (
        await ctx.session.ec2.send(
          new CreateVpcCommand({ CidrBlock: VPC_CIDR, TagSpecifications: ec2TagSpec('vpc', ctx.stack, 'vpc') }),
          opts(ctx),
        )
      ).Vpc;
    }
    const id = vpc?.VpcId;
    if (!id) throw new Error('ec2:CreateVpc returned no VPC ID');
    // EKS needs DNS in the VPC. One attribute per call.
    await ctx.session.ec2.send(new ModifyVpcAttributeCommand({ VpcId: id, EnableDnsSupport: { Value: true } }), opts(ctx));
    await ctx.session.ec2.send(new ModifyVpcAttributeCommand({ VpcId: id, EnableDnsHostnames: { Value: true } }), opts(ctx));
    return { entry: { id, ready: true, cidr: vpc?.CidrBlock ?? VPC_CIDR } };
  },
  async remove(ctx, inv) {
    const ids = new Set<string>();
    const known = inv.resources['vpc']?.id;
    if (known) ids.add(known);
    const found = await ctx.session.ec2.send(new DescribeVpcsCommand({ Filters: ec2TagFilters(ctx.stack, 'vpc') }), opts(ctx));
    for (const v of found.Vpcs ?? []) if (v.VpcId) ids.add(v.VpcId);
    for (const id of ids) {
      if ((await tolerant(() => ctx.session.ec2.send(new DeleteVpcCommand({ VpcId: id }), opts(ctx)))) === 'busy') {
        return waiting(`VPC ${id} to lose its dependencies`, ctx.poll.deleteMs);
      }
    }
    return done();
  },
};

const igwStep: Step<EksContext> = {
  key: 'internet-gateway',
  title: 'internet gateway',
  async ensure(ctx, inv) {
    const vpcId = entryOf(inv, 'vpc', 'VPC').id;
    const found = await ctx.session.ec2.send(
      new DescribeInternetGatewaysCommand({ Filters: ec2TagFilters(ctx.stack, 'internet-gateway') }),
      opts(ctx),
    );
    let igw = found.InternetGateways?.[0];
    if (!igw) {
      igw = (
        await ctx.session.ec2.send(
          new CreateInternetGatewayCommand({ TagSpecifications: ec2TagSpec('internet-gateway', ctx.stack, 'internet-gateway') }),
          opts(ctx),
        )
      ).InternetGateway;
    }
    const id = igw?.InternetGatewayId;
    if (!id) throw new Error('ec2:CreateInternetGateway returned no ID');
    if (!igw?.Attachments?.some((a) => a.VpcId === vpcId)) {
      try {
        await ctx.session.ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: id, VpcId: vpcId }), opts(ctx));
      } catch (err) {
        if (!hasCode(err, 'Resource.AlreadyAssociated')) throw err;
      }
    }
    return { entry: { id, ready: true, vpcId } };
  },
  async remove(ctx, inv) {
    const found = await ctx.session.ec2.send(
      new DescribeInternetGatewaysCommand({ Filters: ec2TagFilters(ctx.stack, 'internet-gateway') }),
      opts(ctx),
    );
    const gateways = new Map<string, string[]>();
    const known = inv.resources['internet-gateway'];
    if (known) gateways.set(known.id, known['vpcId'] ? [String(known['vpcId'])] : []);
    for (const g of found.InternetGateways ?? []) {
      if (g.InternetGatewayId) gateways.set(g.InternetGatewayId, (g.Attachments ?? []).flatMap((a) => (a.VpcId ? [a.VpcId] : [])));
    }
    for (const [id, vpcs] of gateways) {
      for (const vpcId of vpcs) {
        try {
          await ctx.session.ec2.send(new DetachInternetGatewayCommand({ InternetGatewayId: id, VpcId: vpcId }), opts(ctx));
        } catch (err) {
          if (isDependencyViolation(err)) return waiting(`internet gateway ${id} to detach (public addresses still mapped)`, ctx.poll.deleteMs);
          if (!isNotFound(err) && !hasCode(err, 'Gateway.NotAttached')) throw err;
        }
      }
      if ((await tolerant(() => ctx.session.ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId: id }), opts(ctx)))) === 'busy') {
        return waiting(`internet gateway ${id} to lose its dependencies`, ctx.poll.deleteMs);
      }
    }
    return done();
  },
};

function subnetStep(kind: 'public' | 'private', i: number): Step<EksContext> {
  const key = `subnet-${kind}-${i}`;
  return {
    key,
    title: `${kind} subnet ${i + 1}`,
    async ensure(ctx, inv) {
      const vpcId = entryOf(inv, 'vpc', 'VPC').id;
      const zone = zonesOf(inv)[i];
      if (!zone) throw new Error(`no availability zone recorded for subnet ${i}`);
      const found = await ctx.session.ec2.send(new DescribeSubnetsCommand({ Filters: ec2TagFilters(ctx.stack, key) }), opts(ctx));
      let subnet = found.Subnets?.[0];
      if (!subnet) {
        const cidr = kind === 'public' ? publicSubnetCidr(i) : privateSubnetCidr(i);
        const extra: Record<string, string> = {
          [`kubernetes.io/cluster/${clusterName(ctx.stack)}`]: 'shared',
          [kind === 'public' ? 'kubernetes.io/role/elb' : 'kubernetes.io/role/internal-elb']: '1',
        };
        subnet = (
          await ctx.session.ec2.send(
            new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: cidr, AvailabilityZone: zone, TagSpecifications: ec2TagSpec('subnet', ctx.stack, key, extra) }),
            opts(ctx),
          )
        ).Subnet;
      }
      const id = subnet?.SubnetId;
      if (!id) throw new Error('ec2:CreateSubnet returned no subnet ID');
      if (kind === 'public' && !subnet?.MapPublicIpOnLaunch) {
        await ctx.session.ec2.send(new ModifySubnetAttributeCommand({ SubnetId: id, MapPublicIpOnLaunch: { Value: true } }), opts(ctx));
      }
      return { entry: { id, ready: true, zone: subnet?.AvailabilityZone ?? zone, cidr: subnet?.CidrBlock ?? '' } };
    },
    async remove(ctx, inv) {
      const ids = new Set<string>();
      const known = inv.resources[key]?.id;
      if (known) ids.add(known);
      const found = await ctx.session.ec2.send(new DescribeSubnetsCommand({ Filters: ec2TagFilters(ctx.stack, key) }), opts(ctx));
      for (const s of found.Subnets ?? []) if (s.SubnetId) ids.add(s.SubnetId);
      for (const id of ids) {
        if ((await tolerant(() => ctx.session.ec2.send(new DeleteSubnetCommand({ SubnetId: id }), opts(ctx)))) === 'busy') {
          return waiting(`subnet ${id} to lose its network interfaces`, ctx.poll.deleteMs);
        }
      }
      return done();
    },
  };
}

const eipStep: Step<EksContext> = {
  key: 'elastic-ip',
  title: 'Elastic IP',
  async ensure(ctx) {
    const found = await ctx.session.ec2.send(new DescribeAddressesCommand({ Filters: ec2TagFilters(ctx.stack, 'elastic-ip') }), opts(ctx));
    let allocationId = found.Addresses?.[0]?.AllocationId;
    let publicIp = found.Addresses?.[0]?.PublicIp;
    if (!allocationId) {
      const out = await ctx.session.ec2.send(
        new AllocateAddressCommand({ Domain: 'vpc', TagSpecifications: ec2TagSpec('elastic-ip', ctx.stack, 'elastic-ip') }),
        opts(ctx),
      );
      allocationId = out.AllocationId;
      publicIp = out.PublicIp;
    }
    if (!allocationId) throw new Error('ec2:AllocateAddress returned no allocation ID');
    return { entry: { id: allocationId, ready: true, publicIp: publicIp ?? '' } };
  },
  async remove(ctx, inv) {
    const ids = new Set<string>();
    const known = inv.resources['elastic-ip']?.id;
    if (known) ids.add(known);
    const found = await ctx.session.ec2.send(new DescribeAddressesCommand({ Filters: ec2TagFilters(ctx.stack, 'elastic-ip') }), opts(ctx));
    for (const a of found.Addresses ?? []) if (a.AllocationId) ids.add(a.AllocationId);
    for (const id of ids) {
      try {
        await ctx.session.ec2.send(new ReleaseAddressCommand({ AllocationId: id }), opts(ctx));
      } catch (err) {
        if (isNotFound(err)) continue;
        if (isDependencyViolation(err) || hasCode(err, 'AuthFailure')) return waiting(`Elastic IP ${id} to be released by the NAT gateway`, ctx.poll.deleteMs);
        throw err;
      }
    }
    return done();
  },
};

const LIVE_NAT_STATES = ['pending', 'available'];

const natStep: Step<EksContext> = {
  key: 'nat-gateway',
  title: 'NAT gateway',
  async ensure(ctx, inv) {
    const subnetId = entryOf(inv, 'subnet-public-0', 'public subnet').id;
    const allocationId = entryOf(inv, 'elastic-ip', 'Elastic IP').id;
    const found = await ctx.session.ec2.send(
      new DescribeNatGatewaysCommand({ Filter: [...ec2TagFilters(ctx.stack, 'nat-gateway'), { Name: 'state', Values: LIVE_NAT_STATES }] }),
      opts(ctx),
    );
    let nat = found.NatGateways?.[0];
    if (!nat) {
      nat = (
        await ctx.session.ec2.send(
          new CreateNatGatewayCommand({
            SubnetId: subnetId,
            AllocationId: allocationId,
            TagSpecifications: ec2TagSpec('natgateway', ctx.stack, 'nat-gateway'),
          }),
          opts(ctx),
        )
      ).NatGateway;
    }
    const id = nat?.NatGatewayId;
    if (!id) throw new Error('ec2:CreateNatGateway returned no ID');
    const entry = { id, ready: false, subnetId, allocationId };
    if (nat?.State === 'available') return { entry };
    return { entry, ready: false, waitingFor: `NAT gateway ${id} to become available (${nat?.State ?? 'pending'})`, pollMs: ctx.poll.natGatewayMs };
  },
  async remove(ctx, inv) {
    const found = await ctx.session.ec2.send(new DescribeNatGatewaysCommand({ Filter: ec2TagFilters(ctx.stack, 'nat-gateway') }), opts(ctx));
    const gateways = new Map<string, string>();
    const known = inv.resources['nat-gateway']?.id;
    if (known) gateways.set(known, 'unknown');
    for (const n of found.NatGateways ?? []) if (n.NatGatewayId) gateways.set(n.NatGatewayId, n.State ?? 'unknown');
    let pending: string | undefined;
    for (const [id, state] of gateways) {
      if (state === 'deleted' || state === 'failed') continue;
      if (state !== 'deleting') {
        const r = await tolerant(() => ctx.session.ec2.send(new DeleteNatGatewayCommand({ NatGatewayId: id }), opts(ctx)));
        if (r === 'gone') continue;
      }
      pending = id;
    }
    if (pending === undefined) return done();
    // Deletion takes a minute or so on AWS (moto: at once); look once more before waiting.
    const after = await ctx.session.ec2.send(new DescribeNatGatewaysCommand({ Filter: ec2TagFilters(ctx.stack, 'nat-gateway') }), opts(ctx));
    const live = (after.NatGateways ?? []).filter((n) => n.State !== 'deleted' && n.State !== 'failed');
    if (live.length === 0) return done();
    return waiting(`NAT gateway ${live[0]!.NatGatewayId} to be deleted (${live[0]!.State})`, ctx.poll.deleteMs);
  },
};

function routeTableStep(kind: 'public' | 'private'): Step<EksContext> {
  const key = `route-table-${kind}`;
  return {
    key,
    title: `${kind} route table`,
    async ensure(ctx, inv) {
      const vpcId = entryOf(inv, 'vpc', 'VPC').id;
      const subnets = Array.from({ length: ctx.spec.zoneCount }, (_, i) => entryOf(inv, `subnet-${kind}-${i}`, `${kind} subnet`).id);
      const target =
        kind === 'public'
          ? { GatewayId: entryOf(inv, 'internet-gateway', 'internet gateway').id }
          : { NatGatewayId: entryOf(inv, 'nat-gateway', 'NAT gateway').id };
      const found = await ctx.session.ec2.send(new DescribeRouteTablesCommand({ Filters: ec2TagFilters(ctx.stack, key) }), opts(ctx));
      let table: RouteTable | undefined = found.RouteTables?.[0];
      if (!table) {
        table = (
          await ctx.session.ec2.send(
            new CreateRouteTableCommand({ VpcId: vpcId, TagSpecifications: ec2TagSpec('route-table', ctx.stack, key) }),
            opts(ctx),
          )
        ).RouteTable;
      }
      const id = table?.RouteTableId;
      if (!id) throw new Error('ec2:CreateRouteTable returned no ID');
      if (!table?.Routes?.some((r) => r.DestinationCidrBlock === '0.0.0.0/0')) {
        try {
          await ctx.session.ec2.send(new CreateRouteCommand({ RouteTableId: id, DestinationCidrBlock: '0.0.0.0/0', ...target }), opts(ctx));
        } catch (err) {
          if (!hasCode(err, 'RouteAlreadyExists')) throw err;
        }
      }
      const associated = new Set((table?.Associations ?? []).flatMap((a) => (a.SubnetId ? [a.SubnetId] : [])));
      for (const subnetId of subnets) {
        if (associated.has(subnetId)) continue;
        try {
          await ctx.session.ec2.send(new AssociateRouteTableCommand({ RouteTableId: id, SubnetId: subnetId }), opts(ctx));
        } catch (err) {
          if (!hasCode(err, 'Resource.AlreadyAssociated')) throw err;
        }
      }
      return { entry: { id, ready: true, subnets } };
    },
    async remove(ctx, inv) {
      const found = await ctx.session.ec2.send(new DescribeRouteTablesCommand({ Filters: ec2TagFilters(ctx.stack, key) }), opts(ctx));
      const tables = new Map<string, string[]>();
      const known = inv.resources[key]?.id;
      if (known) tables.set(known, []);
      for (const t of found.RouteTables ?? []) {
        if (!t.RouteTableId) continue;
        tables.set(
          t.RouteTableId,
          (t.Associations ?? []).flatMap((a) => (!a.Main && a.RouteTableAssociationId ? [a.RouteTableAssociationId] : [])),
        );
      }
      for (const [id, associations] of tables) {
        for (const associationId of associations) {
          await tolerant(() => ctx.session.ec2.send(new DisassociateRouteTableCommand({ AssociationId: associationId }), opts(ctx)));
        }
        if ((await tolerant(() => ctx.session.ec2.send(new DeleteRouteTableCommand({ RouteTableId: id }), opts(ctx)))) === 'busy') {
          return waiting(`route table ${id} to lose its associations`, ctx.poll.deleteMs);
        }
      }
      return done();
    },
  };
}

const securityGroupStep: Step<EksContext> = {
  key: 'security-group',
  title: 'cluster security group',
  async ensure(ctx, inv) {
    const vpcId = entryOf(inv, 'vpc', 'VPC').id;
    const found = await ctx.session.ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: ec2TagFilters(ctx.stack, 'security-group') }),
      opts(ctx),
    );
    let id = found.SecurityGroups?.[0]?.GroupId;
    if (!id) {
      id = (
        await ctx.session.ec2.send(
          new CreateSecurityGroupCommand({
            GroupName: `${ctx.stack}-cluster`,
            Description: `Threeport EKS cluster ${ctx.stack}: traffic between the control plane and the nodes`,
            VpcId: vpcId,
            TagSpecifications: ec2TagSpec('security-group', ctx.stack, 'security-group'),
          }),
          opts(ctx),
        )
      ).GroupId;
      if (!id) throw new Error('ec2:CreateSecurityGroup returned no group ID');
      try {
        await ctx.session.ec2.send(
          new AuthorizeSecurityGroupIngressCommand({ GroupId: id, IpPermissions: [{ IpProtocol: '-1', UserIdGroupPairs: [{ GroupId: id }] }] }),
          opts(ctx),
        );
      } catch (err) {
        if (!hasCode(err, 'InvalidPermission.Duplicate')) throw err;
      }
    }
    return { entry: { id, ready: true, vpcId } };
  },
  async remove(ctx, inv) {
    const ids = new Set<string>();
    const known = inv.resources['security-group']?.id;
    if (known) ids.add(known);
    const found = await ctx.session.ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: ec2TagFilters(ctx.stack, 'security-group') }),
      opts(ctx),
    );
    for (const g of found.SecurityGroups ?? []) if (g.GroupId) ids.add(g.GroupId);
    for (const id of ids) {
      if ((await tolerant(() => ctx.session.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }), opts(ctx)))) === 'busy') {
        return waiting(`security group ${id} to lose its network interfaces`, ctx.poll.deleteMs);
      }
    }
    return done();
  },
};

// ---- IAM ---------------------------------------------------------------------

function managedPolicy(ctx: EksContext, name: string): string {
  return `arn:${ctx.session.partition}:iam::aws:policy/${name}`;
}

function roleStep(key: 'cluster-role' | 'node-role'): Step<EksContext> {
  const spec = (ctx: EksContext): RoleSpec =>
    key === 'cluster-role'
      ? {
          name: `${ctx.stack}-cluster`,
          description: `Threeport EKS control plane of ${ctx.stack}`,
          trust: { Service: 'eks.amazonaws.com' },
          managedPolicies: [managedPolicy(ctx, 'AmazonEKSClusterPolicy')],
        }
      : {
          name: `${ctx.stack}-node`,
          description: `Threeport EKS nodes of ${ctx.stack}`,
          trust: { Service: 'ec2.amazonaws.com' },
          managedPolicies: [
            managedPolicy(ctx, 'AmazonEKSWorkerNodePolicy'),
            managedPolicy(ctx, 'AmazonEKS_CNI_Policy'),
            managedPolicy(ctx, 'AmazonEC2ContainerRegistryReadOnly'),
          ],
        };
  return {
    key,
    title: key === 'cluster-role' ? 'cluster IAM role' : 'node IAM role',
    async ensure(ctx) {
      const role = await ensureRole(ctx.session, ctx.stack, key, spec(ctx), ctx.signal);
      return { entry: { id: role.name, arn: role.arn, ready: true, policies: spec(ctx).managedPolicies } };
    },
    async remove(ctx) {
      await removeRole(ctx.session, spec(ctx).name, ctx.signal);
      return done();
    },
  };
}

// ---- EKS ---------------------------------------------------------------------

async function describeCluster(ctx: EksContext): Promise<Cluster | undefined> {
  try {
    return (await ctx.session.eks.send(new DescribeClusterCommand({ name: clusterName(ctx.stack) }), opts(ctx))).cluster;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function clusterEntry(c: Cluster): InventoryEntry {
  return {
    id: c.name ?? '',
    ...(c.arn ? { arn: c.arn } : {}),
    ready: c.status === 'ACTIVE',
    status: c.status ?? 'UNKNOWN',
    endpoint: c.endpoint ?? '',
    oidcIssuer: c.identity?.oidc?.issuer ?? '',
    version: c.version ?? '',
  };
}

const clusterStep: Step<EksContext> = {
  key: 'cluster',
  title: 'EKS cluster',
  async ensure(ctx, inv): Promise<EnsureResult> {
    const name = clusterName(ctx.stack);
    let cluster = await describeCluster(ctx);
    if (cluster && cluster.tags?.[STACK_TAG] !== ctx.stack) {
      throw new ProvisioningError(`an EKS cluster named ${name} already exists in ${ctx.session.region} and Threeport did not create it for ${ctx.stack}`);
    }
    if (!cluster) {
      const subnetIds = [
        ...Array.from({ length: ctx.spec.zoneCount }, (_, i) => entryOf(inv, `subnet-private-${i}`, 'private subnet').id),
        ...Array.from({ length: ctx.spec.zoneCount }, (_, i) => entryOf(inv, `subnet-public-${i}`, 'public subnet').id),
      ];
      try {
        cluster = (
          await ctx.session.eks.send(
            new CreateClusterCommand({
              name,
              roleArn: entryOf(inv, 'cluster-role', 'cluster role').arn!,
              resourcesVpcConfig: {
                subnetIds,
                securityGroupIds: [entryOf(inv, 'security-group', 'security group').id],
                endpointPublicAccess: true,
                endpointPrivateAccess: true,
              },
              ...(ctx.spec.kubernetesVersion ? { version: ctx.spec.kubernetesVersion } : {}),
              tags: stackTags(ctx.stack, 'cluster'),
            }),
            opts(ctx),
          )
        ).cluster;
      } catch (err) {
        // A role created seconds ago may not be assumable yet (IAM is eventually consistent).
        if (hasCode(err, 'InvalidParameterException') && /role/i.test(String((err as Error).message))) {
          return {
            entry: { id: name, ready: false, status: 'NOT_CREATED' },
            ready: false,
            waitingFor: `the cluster IAM role to become assumable by EKS`,
            pollMs: ctx.poll.iamPropagationMs,
          };
        }
        if (!hasCode(err, 'ResourceInUseException')) throw err;
        cluster = await describeCluster(ctx);
      }
    }
    if (!cluster) throw new Error(`eks:CreateCluster returned no cluster for ${name}`);
    const entry = clusterEntry(cluster);
    if (cluster.status === 'ACTIVE') return { entry };
    if (cluster.status === 'FAILED') throw new ProvisioningError(`EKS cluster ${name} failed to create; delete the runtime and create it again`);
    return { entry, ready: false, waitingFor: `EKS cluster ${name} to become ACTIVE (${cluster.status ?? 'CREATING'})`, pollMs: ctx.poll.clusterMs };
  },
  async remove(ctx) {
    const cluster = await describeCluster(ctx);
    if (!cluster) return done();
    if (cluster.tags?.[STACK_TAG] !== undefined && cluster.tags[STACK_TAG] !== ctx.stack) return done(); // not ours
    if (cluster.status !== 'DELETING') {
      const r = await tolerant(() => ctx.session.eks.send(new DeleteClusterCommand({ name: clusterName(ctx.stack) }), opts(ctx)));
      if (r === 'gone') return done();
      if (r === 'busy') return waiting(`EKS cluster ${cluster.name} to lose its node groups`, ctx.poll.deleteMs);
    }
    return (await describeCluster(ctx)) ? waiting(`EKS cluster ${cluster.name} to be deleted`, ctx.poll.deleteMs) : done();
  },
};

function oidcArn(ctx: EksContext, inv: ResourceInventory): string | undefined {
  const issuer = inv.resources['cluster']?.['oidcIssuer'];
  const roleArn = inv.resources['cluster-role']?.arn;
  const account = roleArn ? /^arn:[^:]+:iam::(\d+):/.exec(roleArn)?.[1] : undefined;
  if (typeof issuer !== 'string' || issuer === '' || !account) return undefined;
  return `arn:${ctx.session.partition}:iam::${account}:oidc-provider/${issuer.replace(/^https:\/\//, '')}`;
}

const oidcStep: Step<EksContext> = {
  key: 'oidc-provider',
  title: 'IAM OIDC provider (IRSA)',
  async ensure(ctx, inv) {
    const issuer = String(entryOf(inv, 'cluster', 'EKS cluster')['oidcIssuer'] ?? '');
    if (!issuer) throw new ProvisioningError(`EKS cluster ${clusterName(ctx.stack)} reports no OIDC issuer; IRSA cannot be set up`);
    const expected = oidcArn(ctx, inv);
    if (expected) {
      try {
        await ctx.session.iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: expected }), opts(ctx));
        return { entry: { id: expected, arn: expected, ready: true, issuer } };
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    try {
      const out = await ctx.session.iam.send(
        new CreateOpenIDConnectProviderCommand({
          Url: issuer,
          ClientIDList: ['sts.amazonaws.com'],
          ThumbprintList: [OIDC_THUMBPRINT],
          Tags: tagList(stackTags(ctx.stack, 'oidc-provider')),
        }),
        opts(ctx),
      );
      const arn = out.OpenIDConnectProviderArn ?? expected;
      if (!arn) throw new Error('iam:CreateOpenIDConnectProvider returned no ARN');
      return { entry: { id: arn, arn, ready: true, issuer } };
    } catch (err) {
      if (hasCode(err, 'EntityAlreadyExists', 'EntityAlreadyExistsException') && expected) {
        return { entry: { id: expected, arn: expected, ready: true, issuer } };
      }
      throw err;
    }
  },
  async remove(ctx, inv) {
    const arns = new Set<string>();
    const known = inv.resources['oidc-provider']?.arn;
    if (known) arns.add(known);
    const computed = oidcArn(ctx, inv);
    if (computed) arns.add(computed);
    if (arns.size === 0) {
      // The cluster left the inventory before its provider did (or never reached it): find it by its tags.
      const list = await ctx.session.iam.send(new ListOpenIDConnectProvidersCommand({}), opts(ctx));
      for (const p of list.OpenIDConnectProviderList ?? []) {
        if (!p.Arn) continue;
        try {
          const got = await ctx.session.iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: p.Arn }), opts(ctx));
          if (got.Tags?.some((t) => t.Key === STACK_TAG && t.Value === ctx.stack)) arns.add(p.Arn);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
    for (const arn of arns) {
      await tolerant(() => ctx.session.iam.send(new DeleteOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: arn }), opts(ctx)));
    }
    return done();
  },
};

async function describeNodegroup(ctx: EksContext): Promise<Nodegroup | undefined> {
  try {
    return (
      await ctx.session.eks.send(
        new DescribeNodegroupCommand({ clusterName: clusterName(ctx.stack), nodegroupName: DEFAULT_NODE_GROUP }),
        opts(ctx),
      )
    ).nodegroup;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const nodeGroupStep: Step<EksContext> = {
  key: 'node-group',
  title: 'default node group',
  async ensure(ctx, inv): Promise<EnsureResult> {
    let group = await describeNodegroup(ctx);
    if (!group) {
      try {
        group = (
          await ctx.session.eks.send(
            new CreateNodegroupCommand({
              clusterName: clusterName(ctx.stack),
              nodegroupName: DEFAULT_NODE_GROUP,
              nodeRole: entryOf(inv, 'node-role', 'node role').arn!,
              subnets: Array.from({ length: ctx.spec.zoneCount }, (_, i) => entryOf(inv, `subnet-private-${i}`, 'private subnet').id),
              instanceTypes: [ctx.spec.instanceType],
              scalingConfig: { minSize: ctx.spec.minSize, maxSize: ctx.spec.maxSize, desiredSize: ctx.spec.initialSize },
              tags: stackTags(ctx.stack, 'node-group'),
            }),
            opts(ctx),
          )
        ).nodegroup;
      } catch (err) {
        if (!hasCode(err, 'ResourceInUseException')) throw err;
        group = await describeNodegroup(ctx);
      }
    }
    if (!group) throw new Error('eks:CreateNodegroup returned no node group');
    const entry: InventoryEntry = {
      id: group.nodegroupName ?? DEFAULT_NODE_GROUP,
      ...(group.nodegroupArn ? { arn: group.nodegroupArn } : {}),
      ready: group.status === 'ACTIVE',
      status: group.status ?? 'UNKNOWN',
      instanceType: ctx.spec.instanceType,
    };
    if (group.status === 'ACTIVE') return { entry };
    if (group.status === 'CREATE_FAILED' || group.status === 'DEGRADED') {
      const issues = (group.health?.issues ?? []).map((i) => `${i.code}: ${i.message}`).join('; ');
      throw new ProvisioningError(`node group ${entry.id} is ${group.status}${issues ? `: ${issues}` : ''}`);
    }
    return { entry, ready: false, waitingFor: `node group ${entry.id} to become ACTIVE (${group.status ?? 'CREATING'})`, pollMs: ctx.poll.nodeGroupMs };
  },
  async remove(ctx) {
    const group = await describeNodegroup(ctx);
    if (!group) return done();
    if (group.status !== 'DELETING') {
      const r = await tolerant(() =>
        ctx.session.eks.send(new DeleteNodegroupCommand({ clusterName: clusterName(ctx.stack), nodegroupName: DEFAULT_NODE_GROUP }), opts(ctx)),
      );
      if (r === 'gone') return done();
    }
    return (await describeNodegroup(ctx)) ? waiting(`node group ${DEFAULT_NODE_GROUP} to be deleted`, ctx.poll.deleteMs) : done();
  },
};

/** The steps for a spec, in creation order. `zones` may exceed spec.zoneCount when an inventory has more (deletion). */
export function eksSteps(spec: Pick<EksSpec, 'zoneCount'>, zones = spec.zoneCount): Step<EksContext>[] {
  const n = Math.max(spec.zoneCount, zones);
  return [
    zonesStep,
    vpcStep,
    igwStep,
    ...Array.from({ length: n }, (_, i) => subnetStep('public', i)),
    ...Array.from({ length: n }, (_, i) => subnetStep('private', i)),
    eipStep,
    natStep,
    routeTableStep('public'),
    routeTableStep('private'),
    securityGroupStep,
    roleStep('cluster-role'),
    roleStep('node-role'),
    clusterStep,
    oidcStep,
    nodeGroupStep,
  ];
}

/** How many zones an inventory's subnets span (for deleting a stack whose ZoneCount changed). */
export function zonesInInventory(inv: ResourceInventory | undefined): number {
  let n = 0;
  for (const key of Object.keys(inv?.resources ?? {})) {
    const m = /^subnet-(?:public|private)-(\d+)$/.exec(key);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/** What the RDS and S3 stacks need from a provisioned runtime's inventory. */
export interface RuntimeNetwork {
  region: string;
  vpcId: string;
  vpcCidr: string;
  privateSubnetIds: string[];
  clusterSecurityGroupId: string;
  oidcProviderArn?: string;
  oidcIssuer?: string;
  clusterName: string;
}

export function runtimeNetwork(inv: ResourceInventory | undefined): RuntimeNetwork | undefined {
  if (!inv || inv.phase !== 'created') return undefined;
  const r = inv.resources;
  const vpc = r['vpc'];
  const sg = r['security-group'];
  const privateSubnetIds = Object.keys(r)
    .filter((k) => /^subnet-private-\d+$/.test(k))
    .sort()
    .map((k) => r[k]!.id);
  if (!vpc || !sg || privateSubnetIds.length === 0) return undefined;
  return {
    region: inv.region,
    vpcId: vpc.id,
    vpcCidr: String(vpc['cidr'] ?? VPC_CIDR),
    privateSubnetIds,
    clusterSecurityGroupId: sg.id,
    ...(r['oidc-provider']?.arn ? { oidcProviderArn: r['oidc-provider'].arn } : {}),
    ...(typeof r['cluster']?.['oidcIssuer'] === 'string' ? { oidcIssuer: r['cluster']['oidcIssuer'] } : {}),
    clusterName: r['cluster']?.id ?? clusterName(inv.stack),
  };
}

export interface EksRunInput {
  session: AwsSession;
  stack: string;
  spec: EksSpec;
  /** The stored inventory, if any; a new one is started otherwise. */
  inventory?: ResourceInventory | undefined;
  save: (inventory: ResourceInventory) => Promise<void>;
  signal?: AbortSignal;
  poll?: Partial<EksPollIntervals>;
  onStep?: RunOptions['onStep'];
}

function runContext(input: EksRunInput): EksContext {
  return {
    session: input.session,
    stack: input.stack,
    spec: input.spec,
    poll: { ...DEFAULT_EKS_POLL, ...input.poll },
    ...(input.signal ? { signal: input.signal } : {}),
  };
}

/** Runs the create steps as far as they go now; call again after `pollMs` while not done. */
export async function provisionEks(input: EksRunInput): Promise<RunResult & { inventory: ResourceInventory }> {
  if (input.spec.zoneCount < 1 || input.spec.zoneCount > MAX_ZONES) {
    throw new ProvisioningError(`ZoneCount must be from 1 to ${MAX_ZONES}, got ${input.spec.zoneCount}`);
  }
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region);
  const result = await runCreate(eksSteps(input.spec), runContext(input), inventory, {
    save: input.save,
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.onStep ? { onStep: input.onStep } : {}),
  });
  return { ...result, inventory };
}

/** Runs the delete steps (reverse order) as far as they go now; call again after `pollMs` while not done. */
export async function deleteEks(input: EksRunInput): Promise<RunResult & { inventory: ResourceInventory }> {
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region, 'deleting');
  const steps = eksSteps(input.spec, zonesInInventory(inventory));
  const result = await runDelete(steps, runContext(input), inventory, {
    save: input.save,
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.onStep ? { onStep: input.onStep } : {}),
  });
  return { ...result, inventory };
}
