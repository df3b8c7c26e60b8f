// Rules for gateway ports (GatewayHttpPort, GatewayTcpPort, and the ports nested in a
// GatewayDefinition): the API refuses a bad port with a 400 naming the field, and the gateway
// controller applies the same rules to ports written another way.

/** Why a TLS port needs a domain name: the certificate is issued for that host. */
export const TLS_NEEDS_DOMAIN =
  'TLS needs a host name for its certificate: set DomainNameDefinitionID (the certificate is issued for <SubDomain>.<Domain>, or the Domain)';

/** TLS on TCP ports: upstream leaves it a TODO, and no route kind here terminates TLS for raw TCP. */
export const TCP_TLS_UNSUPPORTED = 'TLS on TCP ports is not supported (TLS is terminated on HTTP ports only); set TLSEnabled: false';

/** A port's own problem (its range), naming the field; undefined when it is fine. */
export function portProblem(where: string, port: Readonly<Record<string, unknown>>): string | undefined {
  const p = port['Port'];
  if (typeof p === 'number' && (!Number.isInteger(p) || p < 1 || p > 65535)) return `field ${where}.Port must be between 1 and 65535, got ${p}`;
  return undefined;
}

function hasDomainName(gd: Readonly<Record<string, unknown>>): boolean {
  const id = gd['DomainNameDefinitionID'];
  return typeof id === 'number' && id > 0;
}

/**
 * Problems of a GatewayDefinition's nested ports: each port's own, a port used twice, TLS on a
 * definition without a domain name (no host to certify), TLS on a TCP port, TLS and HTTPSRedirect
 * on one port, and an HTTPSRedirect with no TLS port to redirect to. A registered definition
 * (Reconciled: true, nothing reconciles it) may carry TLS ports as it likes.
 */
export function definitionPortsProblem(gd: Readonly<Record<string, unknown>>): string | undefined {
  const seen = new Map<number, string>();
  const reconciles = gd['Reconciled'] !== true;
  let tlsHttpPorts = 0;
  let redirect: string | undefined;
  for (const field of ['HttpPorts', 'TcpPorts'] as const) {
    const list = gd[field];
    if (!Array.isArray(list)) continue;
    for (const [i, item] of (list as unknown[]).entries()) {
      if (item === null || typeof item !== 'object') return `field GatewayDefinition.${field}[${i}] must be an object`;
      const where = `GatewayDefinition.${field}[${i}]`;
      const port = item as Record<string, unknown>;
      const problem = portProblem(where, port);
      if (problem) return problem;
      if (reconciles && port['TLSEnabled'] === true) {
        if (field === 'TcpPorts') return `field ${where}.TLSEnabled: ${TCP_TLS_UNSUPPORTED}`;
        if (!hasDomainName(gd)) return `field ${where}.TLSEnabled: ${TLS_NEEDS_DOMAIN}`;
        if (port['HTTPSRedirect'] === true) return `field ${where}: TLSEnabled and HTTPSRedirect cannot both be true on one port (redirect from a plain port to this one)`;
        tlsHttpPorts++;
      }
      if (field === 'HttpPorts' && port['HTTPSRedirect'] === true && port['TLSEnabled'] !== true) redirect ??= where;
      const n = port['Port'];
      if (typeof n !== 'number') continue;
      const before = seen.get(n);
      if (before) return `field ${where}.Port: port ${n} is used twice (also ${before}.Port)`;
      seen.set(n, where);
    }
  }
  if (reconciles && redirect && tlsHttpPorts === 0) {
    return `field ${redirect}.HTTPSRedirect: there is no TLSEnabled HTTP port in this definition to redirect to`;
  }
  return undefined;
}
