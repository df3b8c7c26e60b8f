// Rules for gateway ports (GatewayHttpPort, GatewayTcpPort, and the ports nested in a
// GatewayDefinition): the API refuses a bad port with a 400 naming the field, and the gateway
// controller applies the same rules to ports written another way.

/** Why TLS is refused for now (cert-manager issuance per port is the next step of issue 11). */
export const TLS_UNAVAILABLE = 'TLS on gateway ports is not available yet (no controller issues certificates); set TLSEnabled: false';

/** A port's own problem (its range), naming the field; undefined when it is fine. */
export function portProblem(where: string, port: Readonly<Record<string, unknown>>): string | undefined {
  const p = port['Port'];
  if (typeof p === 'number' && (!Number.isInteger(p) || p < 1 || p > 65535)) return `field ${where}.Port must be between 1 and 65535, got ${p}`;
  return undefined;
}

/**
 * Problems of a GatewayDefinition's nested ports: each port's own, a port used twice, and TLS on a
 * port of a definition that asks for a reconcile (a registered one, Reconciled: true, may say so).
 */
export function definitionPortsProblem(gd: Readonly<Record<string, unknown>>): string | undefined {
  const seen = new Map<number, string>();
  for (const field of ['HttpPorts', 'TcpPorts'] as const) {
    const list = gd[field];
    if (!Array.isArray(list)) continue;
    for (const [i, item] of (list as unknown[]).entries()) {
      if (item === null || typeof item !== 'object') return `field GatewayDefinition.${field}[${i}] must be an object`;
      const where = `GatewayDefinition.${field}[${i}]`;
      const problem = portProblem(where, item as Record<string, unknown>);
      if (problem) return problem;
      if (gd['Reconciled'] !== true && (item as Record<string, unknown>)['TLSEnabled'] === true) return `field ${where}.TLSEnabled: ${TLS_UNAVAILABLE}`;
      const port = (item as Record<string, unknown>)['Port'];
      if (typeof port !== 'number') continue;
      const before = seen.get(port);
      if (before) return `field ${where}.Port: port ${port} is used twice (also ${before}.Port)`;
      seen.set(port, where);
    }
  }
  return undefined;
}

