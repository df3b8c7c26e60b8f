// A Terraform configuration in the shape of upstream's samples/terraform (an RDS database: a subnet
// group, a security group, an ingress rule, the instance; variables region, vpc_id, subnet_ids,
// db_port, app_security_group and a sensitive db_password; rds_* outputs), with OpenTofu's
// built-in `terraform_data` resource in place of the AWS provider's resources (no provider can be
// had here). Its state lives in moto's S3 (or, with backend: 'local', on the instance).
//
// Every resource appends "create <name> <id>" to a ledger file when it is created and
// "destroy <name> <id>" when it is destroyed (local-exec provisioners), so a test can count how
// often each was really created: the proof that a resumed run made no duplicates.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface SampleOptions {
  /** moto's URL, for the s3 backend. */
  motoUrl: string;
  bucket: string;
  key: string;
  ledger: string;
  /** 'local': no backend block, the state is stored on the instance. */
  backend?: 's3' | 'local';
  /** Seconds the db_instance's creation takes (a marker file appears when it starts). */
  slowSeconds?: number;
  marker?: string;
}

export const RESOURCE_NAMES = ['db_subnet_group', 'db_security_group', 'db_ingress', 'db_instance'];
export const DB_PASSWORD = 'unsecure-pwd-9f3e1c';

function ledgerProvisioners(name: string, ledger: string): string {
  return `
  provisioner "local-exec" {
    command = "echo create ${name} \${self.id} >> ${ledger}"
  }
  provisioner "local-exec" {
    when    = destroy
    command = "echo destroy ${name} \${self.id} >> ${ledger}"
  }`;
}

export function sampleFiles(o: SampleOptions): Record<string, string> {
  const backend =
    (o.backend ?? 's3') === 's3'
      ? `
  backend "s3" {
    bucket                      = "${o.bucket}"
    key                         = "${o.key}"
    region                      = "us-east-1"
    endpoints                   = { s3 = "${o.motoUrl}" }
    use_path_style              = true
    use_lockfile                = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
  }`
      : '';
  const slow = o.slowSeconds
    ? `
  provisioner "local-exec" {
    command = "echo started > ${o.marker} && sleep ${o.slowSeconds}"
  }`
    : '';
  const main = `terraform {
  required_version = ">= 1.6.0"${backend}
}

resource "terraform_data" "db_subnet_group" {
  input = {
    name       = "wordpress-db-subnet-group"
    region     = var.region
    subnet_ids = var.subnet_ids
  }${ledgerProvisioners('db_subnet_group', o.ledger)}
}

resource "terraform_data" "db_security_group" {
  input = {
    name        = "wordpress-db-sg"
    description = "Allow database connection to database from wordpress"
    vpc_id      = var.vpc_id
  }${ledgerProvisioners('db_security_group', o.ledger)}
}

resource "terraform_data" "db_ingress" {
  input = {
    security_group_id        = terraform_data.db_security_group.id
    source_security_group_id = var.app_security_group
    from_port                = var.db_port
    to_port                  = var.db_port
  }${ledgerProvisioners('db_ingress', o.ledger)}
}

resource "terraform_data" "db_instance" {
  input = {
    identifier        = "wordpress-db"
    db_name           = "wordpress"
    port              = var.db_port
    username          = "wordpress_user"
    password          = var.db_password
    subnet_group_name = terraform_data.db_subnet_group.output.name
    security_groups   = [terraform_data.db_security_group.id]
  }
  depends_on = [terraform_data.db_ingress]${slow}${ledgerProvisioners('db_instance', o.ledger)}
}
`;
  const variables = `variable "region" {
  description = "The region to deploy the RDS instance to"
  type        = string
}

variable "vpc_id" {
  description = "The VPC to deploy the RDS instance to"
  type        = string
}

variable "subnet_ids" {
  description = "The collection of subnets the RDS instance can be provisioned in"
  type        = list(string)
}

variable "app_security_group" {
  description = "The security group used by the application that incoming collections will be allowed from"
  type        = string
}

variable "db_port" {
  description = "The port on which the database will accept connections"
  type        = number
}

variable "db_password" {
  description = "RDS root user password"
  type        = string
  sensitive   = true
}
`;
  const outputs = `output "rds_hostname" {
  value = "\${terraform_data.db_instance.id}.wordpress-db.local"
}

output "rds_db_name" {
  value = terraform_data.db_instance.output.db_name
  sensitive = true
}

output "rds_port" {
  value = var.db_port
}

output "rds_username" {
  value = "wordpress_user"
}

output "rds_password" {
  value     = var.db_password
  sensitive = true
}
`;
  return { 'main.tf': main, 'variables.tf': variables, 'outputs.tf': outputs };
}

/** The instance's variables, as upstream's terraform.tfvars. */
export function sampleVars(port = 3306, password = DB_PASSWORD): string {
  return [
    'region = "us-east-1"',
    'vpc_id = "vpc-0549e297d46fff551"',
    'subnet_ids = ["subnet-0252e301fa6e2ca86", "subnet-0811563b06adfb983", "subnet-0b79b2a01d06c3740"]',
    `db_port = ${port}`,
    'app_security_group = "sg-02fb322ff111bff60"',
    `db_password = "${password}"`,
    '',
  ].join('\n');
}

/** ConfigDir as tptctl builds it: the .tf files concatenated. */
export function configDir(files: Record<string, string>): string {
  return Object.keys(files)
    .sort()
    .map((f) => files[f])
    .join('\n');
}

/** Writes the sample as upstream lays it out: <dir>/config/*.tf and config/terraform.tfvars. */
export function writeSample(dir: string, o: SampleOptions, vars = sampleVars()): string {
  const config = join(dir, 'config');
  mkdirSync(config, { recursive: true });
  for (const [name, text] of Object.entries(sampleFiles(o))) writeFileSync(join(config, name), text);
  writeFileSync(join(config, 'terraform.tfvars'), vars);
  return config;
}

export interface LedgerEntry {
  op: 'create' | 'destroy';
  name: string;
  id: string;
}

export function readLedger(path: string): LedgerEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [op, name, id] = l.trim().split(/\s+/);
      return { op: op as 'create' | 'destroy', name: name!, id: id! };
    });
}

/** The terraform_data resources of a state document: name → id. */
export function stateResources(state: string | undefined): Record<string, string> {
  if (!state) return {};
  const s = JSON.parse(state) as { resources?: Array<{ type: string; name: string; instances: Array<{ attributes: { id: string } }> }> };
  const out: Record<string, string> = {};
  for (const r of s.resources ?? []) if (r.type === 'terraform_data') out[r.name] = r.instances[0]!.attributes.id;
  return out;
}
