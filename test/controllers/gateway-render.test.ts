// What a GatewayDefinition with TLS ports renders into (no cluster needed): the Certificate for
// the host, the HTTPS listener that terminates with its Secret, the redirect to the TLS port, and
// the issuer rule. The end-to-end behaviour is in test/integration/gateway-tls.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatewayHealth, renderGateway, type RenderInput } from '../../src/controllers/gateway/render.js';
import { CA_ISSUER, acmeIssuerObject, certificateSettingsFromEnv, certificateState, usesAcme } from '../../src/controllers/gateway/cert-manager.js';
import type { KubeObject } from '../../src/providers/kube/client.js';

const base: RenderInput = {
  instanceId: 7,
  name: 'gateway-shop',
  namespace: 'shop',
  hostname: 'shop.example.test',
  http: [
    { Port: 8080, Path: '/', HTTPSRedirect: true },
    { Port: 8443, Path: '/', TLSEnabled: true },
  ],
  tcp: [],
  service: { name: 'web', port: 80 },
  tls: { secretName: 'gateway-shop-tls', issuer: CA_ISSUER },
};

test('a TLS port renders a Certificate for the host, an HTTPS listener with its Secret, and the plain port redirects to it', () => {
  const [cert, gateway, plain, secure] = renderGateway(base) as [KubeObject, KubeObject, KubeObject, KubeObject];
  assert.equal(cert.kind, 'Certificate');
  assert.deepEqual((cert['spec'] as Record<string, unknown>)['dnsNames'], ['shop.example.test']);
  assert.equal((cert['spec'] as Record<string, unknown>)['secretName'], 'gateway-shop-tls');
  assert.deepEqual(((cert['spec'] as Record<string, unknown>)['secretTemplate'] as Record<string, unknown>)['labels'], cert.metadata.labels);
  const listeners = (gateway['spec'] as { listeners: Record<string, unknown>[] }).listeners;
  assert.deepEqual(listeners.map((l) => [l['name'], l['protocol'], l['port']]), [['http-8080', 'HTTP', 8080], ['https-8443', 'HTTPS', 8443]]);
  assert.deepEqual(listeners[1]!['tls'], { mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: 'gateway-shop-tls' }] });
  const rule = (r: KubeObject) => ((r['spec'] as { rules: Record<string, unknown>[] }).rules[0]!);
  assert.deepEqual(rule(plain)['filters'], [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301, port: 8443 } }]);
  assert.deepEqual((secure['spec'] as { parentRefs: unknown[] }).parentRefs, [{ name: 'gateway-shop', sectionName: 'https-8443' }]);
  assert.deepEqual(rule(secure)['backendRefs'], [{ name: 'web', port: 80 }]);
  // Redirecting to 443 leaves the port out (https implies it).
  const to443 = renderGateway({ ...base, http: [{ Port: 80, HTTPSRedirect: true }, { Port: 443, TLSEnabled: true }] });
  assert.deepEqual(rule(to443[2]!)['filters'], [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }]);
  // No TLS port: no Certificate, whatever `tls` says.
  assert.deepEqual(renderGateway({ ...base, http: [{ Port: 8080 }] }).map((o) => o.kind), ['Gateway', 'HTTPRoute']);
  assert.throws(() => renderGateway({ ...base, tls: undefined } as RenderInput), /TLS ports need a certificate/);
});

test('health waits for the Certificate first, naming it', () => {
  const wanted = renderGateway(base);
  const ready = (o: KubeObject, type: string, status: string): KubeObject => ({ ...o, status: o.kind === 'HTTPRoute' ? { parents: [{ conditions: [{ type, status }] }] } : { conditions: [{ type, status }] } });
  const pending = [{ ...wanted[0]!, status: { conditions: [{ type: 'Ready', status: 'False', reason: 'DoesNotExist', message: 'Issuing certificate as Secret does not exist' }] } }, ...wanted.slice(1)];
  assert.deepEqual(gatewayHealth(pending, wanted), {
    healthy: false,
    waitingFor: 'Certificate',
    waiting: 'Certificate shop/gateway-shop-tls Ready is False (DoesNotExist: Issuing certificate as Secret does not exist)',
  });
  const live = [ready(wanted[0]!, 'Ready', 'True'), ready(wanted[1]!, 'Programmed', 'True'), ready(wanted[2]!, 'Accepted', 'True'), ready(wanted[3]!, 'Accepted', 'True')];
  assert.deepEqual(gatewayHealth(live, wanted), { healthy: true });
  const st = certificateState({ ...wanted[0]!, status: { conditions: [{ type: 'Ready', status: 'True' }], notAfter: '2027-03-02T00:00:00Z', renewalTime: '2027-01-31T00:00:00Z', revision: 2 } });
  assert.deepEqual(st, { ready: true, notAfter: '2027-03-02T00:00:00Z', renewalTime: '2027-01-31T00:00:00Z', revision: 2 });
});

test('the issuer rule: ACME only with a directory and a Public zone', () => {
  const domain = { id: 3, domain: 'example.com', zone: 'Public', adminEmail: 'admin@example.com' };
  const none = certificateSettingsFromEnv({});
  assert.equal(none.acme, undefined);
  assert.equal(usesAcme(none, domain), false);
  const acme = certificateSettingsFromEnv({ THREEPORT_ACME_DIRECTORY_URL: 'https://acme.test/dir', THREEPORT_DNS01_NAMESERVERS: '127.0.0.1:53, 127.0.0.2:53' });
  assert.deepEqual(acme.acme, { directoryUrl: 'https://acme.test/dir', dns01Nameservers: ['127.0.0.1:53', '127.0.0.2:53'] });
  assert.equal(usesAcme(acme, domain), true);
  assert.equal(usesAcme(acme, { ...domain, zone: 'testZone' }), false, 'upstream e2e shape: not Public, so the CA issuer');
  const issuer = acmeIssuerObject(acme.acme!, domain, 'us-east-1');
  assert.equal(issuer.metadata.name, 'threeport-acme-3');
  assert.deepEqual((issuer['spec'] as { acme: Record<string, unknown> }).acme['solvers'], [{ selector: { dnsZones: ['example.com'] }, dns01: { route53: { region: 'us-east-1' } } }]);
  assert.equal((issuer['spec'] as { acme: Record<string, unknown> }).acme['email'], 'admin@example.com');
});
