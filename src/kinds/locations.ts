// Threeport's provider-neutral locations and node sizes, and the AWS values they
// map to (upstream internal/kubernetes-runtime/mapping). Validation of
// KubernetesRuntimeInstance.Location and the EKS controller both read this table.

export const LOCATION_TO_AWS_REGION: Readonly<Record<string, string>> = {
  Local: 'us-east-1',
  'NorthAmerica:NewYork': 'us-east-1',
  'NorthAmerica:Chicago': 'us-east-2',
  'NorthAmerica:LosAngeles': 'us-west-1',
  'NorthAmerica:Seattle': 'us-west-2',
  'NorthAmerica:Toronto': 'ca-central-1',
  'Asia:HongKong': 'ap-east-1',
  'Asia:Hyderabad': 'ap-south-2',
  'Asia:Jakarta': 'ap-southeast-3',
  'Asia:Mumbai': 'ap-south-1',
  'Asia:Osaka': 'ap-northeast-3',
  'Asia:Seoul': 'ap-northeast-2',
  'Asia:Singapore': 'ap-southeast-1',
  'Asia:Tokyo': 'ap-northeast-1',
  'Asia:Manama': 'me-south-1',
  'Asia:Dubai': 'me-central-1',
  'Oceana:Sydney': 'ap-southeast-2',
  'Oceana:Melbourne': 'ap-southeast-4',
  'Europe:Frankfurt': 'eu-central-1',
  'Europe:Dublin': 'eu-west-1',
  'Europe:London': 'eu-west-2',
  'Europe:Milan': 'eu-south-1',
  'Europe:Paris': 'eu-west-3',
  'Europe:Madrid': 'eu-south-2',
  'Europe:Stockholm': 'eu-north-1',
  'Europe:Zurich': 'eu-central-2',
  'SouthAmerica:SaoPaulo': 'sa-east-1',
  'Africa:CapeTown': 'af-south-1',
};

export const LOCATIONS = Object.keys(LOCATION_TO_AWS_REGION);
export const AWS_REGIONS = [...new Set(Object.values(LOCATION_TO_AWS_REGION))];

export const NODE_PROFILES = ['Balanced', 'ComputeOptimized', 'MemoryOptimized'] as const;
export const NODE_SIZES = ['2XSmall', 'XSmall', 'Small', 'Medium', 'Large', 'XLarge', '2XLarge', '4XLarge'] as const;

const FAMILY: Record<(typeof NODE_PROFILES)[number], readonly string[]> = {
  Balanced: ['t3.nano', 't3.micro', 't3.small', 't3.medium', 'm7i.large', 'm7i.xlarge', 'm7i.2xlarge', 'm7i.4xlarge'],
  ComputeOptimized: ['c7i.large', 'c7i.large', 'c7i.large', 'c7i.large', 'c7i.xlarge', 'c7i.2xlarge', 'c7i.4xlarge', 'c7i.8xlarge'],
  MemoryOptimized: ['r7i.large', 'r7i.large', 'r7i.large', 'r7i.large', 'r7i.xlarge', 'r7i.2xlarge', 'r7i.4xlarge', 'r7i.8xlarge'],
};

export function awsInstanceType(profile: string, size: string): string | undefined {
  const family = FAMILY[profile as keyof typeof FAMILY];
  const index = (NODE_SIZES as readonly string[]).indexOf(size);
  return family && index >= 0 ? family[index] : undefined;
}

/** RDS engines and the major versions upstream accepts (aws_validate.go). */
export const RDS_ENGINE_VERSIONS: Readonly<Record<string, readonly string[]>> = {
  mysql: ['5.7', '8.0'],
  postgres: ['12', '13', '14', '15', '16'],
  mariadb: ['10.4', '10.5', '10.6', '10.11', '11.4'],
};

export const RDS_MACHINE_SIZES: Readonly<Record<string, string>> = {
  XSmall: 'db.t3.micro',
  Small: 'db.t3.small',
  Medium: 'db.t3.medium',
  Large: 'db.m5.large',
  XLarge: 'db.m5.xlarge',
};
