#!/usr/bin/env bash
# Builds the support-service peers (the real controllers behind Gateways, TLS certificates, DNS
# records and secrets) from the Go module proxy into a per-machine cache outside the repository,
# one cache entry per peer and version, so that a first use builds only the peer it needs.
#
#   scripts/peers/build-support-peers.sh [PEER...]      build what is missing (default: all peers)
#   scripts/peers/build-support-peers.sh --print-dir PEER   print PEER's cache dir (exit 0 even if
#                                                         not built; binaries are in DIR/bin)
#   scripts/peers/build-support-peers.sh --list         print the peers and their pinned versions
#
# Peers: traefik, cert-manager, pebble, coredns, external-dns, external-secrets, gateway-api,
# prometheus, victoria-logs (the observability stacks' metrics and log stores).
# Each built peer's DIR/build-info.txt records its cold build time and binary size.
#
# Environment: THREEPORT_CACHE_DIR (default ~/.cache/threeport).
# Nothing third-party is vendored or committed: the wrapper modules below are generated into
# the cache and resolved through the Go module proxy. The proxy here is filtered (some module
# versions answer 403), which is why several peers are built through a trimmed wrapper `main`.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------
TRAEFIK_VERSION=v3.6.12            # github.com/traefik/traefik/v3 (v3.7.x: 15 deps refused)
CERT_MANAGER_VERSION=v1.21.2       # github.com/cert-manager/cert-manager (pkg/controller)
PEBBLE_VERSION=v2.10.3             # github.com/letsencrypt/pebble/v2 (ACME test server)
COREDNS_VERSION=v1.15.0            # github.com/coredns/coredns
EXTERNAL_DNS_VERSION=v0.23.0       # sigs.k8s.io/external-dns (declares go 1.27)
EXTERNAL_DNS_TOOLCHAIN=go1.27.0    # GOTOOLCHAIN for external-dns only
EXTERNAL_SECRETS_VERSION=v0.16.2   # github.com/external-secrets/external-secrets (1.x: sub-modules not served)
GATEWAY_API_VERSION=v1.4.0         # sigs.k8s.io/gateway-api (CRDs only)
PROMETHEUS_VERSION=v0.316.0        # github.com/prometheus/prometheus (Prometheus 3.x; Debian's 2.42 lacks Kubernetes SD)
VICTORIA_LOGS_VERSION=v1.52.1      # github.com/VictoriaMetrics/VictoriaLogs (Loki is AGPL here: not to be used)

PEERS=(traefik cert-manager pebble coredns external-dns external-secrets gateway-api prometheus victoria-logs)
peer_version() {
  case "$1" in
    traefik) echo "$TRAEFIK_VERSION" ;;
    cert-manager) echo "$CERT_MANAGER_VERSION" ;;
    pebble) echo "$PEBBLE_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    external-dns) echo "$EXTERNAL_DNS_VERSION" ;;
    external-secrets) echo "$EXTERNAL_SECRETS_VERSION" ;;
    gateway-api) echo "$GATEWAY_API_VERSION" ;;
    prometheus) echo "$PROMETHEUS_VERSION" ;;
    victoria-logs) echo "$VICTORIA_LOGS_VERSION" ;;
    *) return 1 ;;
  esac
}

CACHE_ROOT="${THREEPORT_CACHE_DIR:-$HOME/.cache/threeport}"
peer_dir() { echo "$CACHE_ROOT/$1/$(peer_version "$1")"; }

usage() { echo "usage: $0 [PEER...] | --print-dir PEER | --list   (peers: ${PEERS[*]})" >&2; exit 2; }

case "${1:-}" in
  --print-dir)
    [[ $# -eq 2 ]] && peer_version "$2" >/dev/null || usage
    peer_dir "$2"; exit 0 ;;
  --list)
    for p in "${PEERS[@]}"; do echo "$p $(peer_version "$p")"; done; exit 0 ;;
  -*) usage ;;
esac
SELECTED=("$@")
[[ ${#SELECTED[@]} -eq 0 ]] && SELECTED=("${PEERS[@]}")
for p in "${SELECTED[@]}"; do peer_version "$p" >/dev/null || usage; done

command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
command -v flock >/dev/null || { echo "flock (util-linux) is required" >&2; exit 1; }

export GOFLAGS=-mod=mod
export CGO_ENABLED=0
# GOCACHE / GOMODCACHE stay at their defaults (outside the repo).

LOG_TAG=build-support-peers
# shellcheck source=../lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/go-build.sh"

# build_bin <peer-dir> <name> <module-dir> <package> <ldflags-extra>: into <peer-dir>/bin, with
# the cold build time and size recorded in <peer-dir>/build-info.txt.
build_bin() {
  local dir=$1 name=$2 mod_dir=$3 pkg=$4 extra_ldflags=$5
  BUILD_INFO="$dir/build-info.txt" go_build_bin "$dir/bin" "$name" "$mod_dir" build \
    -trimpath ${BUILD_TAGS:+-tags "$BUILD_TAGS"} -ldflags "-s -w $extra_ldflags" "$pkg"
}

# with_lock <peer> <fn>: one build per peer and machine at a time. A second invocation for the
# same peer waits, then finds the binary present; different peers build in parallel.
with_lock() {
  local peer=$1 fn=$2 dir; dir=$(peer_dir "$peer")
  mkdir -p "$dir"
  hold_lock "$CACHE_ROOT/$peer/.build.lock"
  "$fn" "$dir"
  exec 9>&-
}

# ---- traefik (Gateway API + Ingress controller and proxy) ----------------------------------
# The replace/exclude lines are upstream's own (traefik's go.mod): a dependency's replaces do
# not apply to the main module, so the wrapper must repeat them or the build picks the originals.
build_traefik() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/traefik" ]]; then
    write_gomod "$mod" traefikbin github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" "$(cat <<EOF
// Containous forks (from traefik $TRAEFIK_VERSION's go.mod)
replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
	github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595
)

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
EOF
)"
    write_tools_go "$mod" github.com/traefik/traefik/v3/cmd/traefik
  fi
  build_bin "$dir" traefik "$mod" github.com/traefik/traefik/v3/cmd/traefik \
    "-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.Codename=threeport"
}

# ---- cert-manager (Certificates, Issuers, ACME) -----------------------------------------------
# Its cmd/controller is a separate module that the proxy does not serve, so this is our own small
# `main` over pkg/controller: the same ContextFactory and controller registry as upstream's binary,
# with upstream's default controller set minus Venafi (whose SDK the proxy refuses). No webhook or
# cainjector: an out-of-cluster controller does not need them, and a simulated cluster must not
# get webhook configurations (the API server would call fake pod IPs).
build_cert_manager() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/cert-manager-controller" ]]; then
    write_gomod "$mod" certmanagerbin github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION"
    cat > "$mod/main.go" <<'EOF'
// Command cert-manager-controller runs cert-manager's controllers out of cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

// Upstream's default set (internal/apis/config/controller/v1alpha1), without Venafi.
var defaultControllers = []string{
	"issuers", "clusterissuers", "certificates-metrics", "ingress-shim", "orders", "challenges",
	"certificaterequests-issuer-acme", "certificaterequests-approver", "certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-vault",
	"certificates-trigger", "certificates-issuing", "certificates-key-manager",
	"certificates-request-manager", "certificates-readiness", "certificates-revision-manager",
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to a kubeconfig (out of cluster)")
	namespace := flag.String("namespace", "", "limit to one namespace (disables ClusterIssuers)")
	clusterNS := flag.String("cluster-resource-namespace", "kube-system", "namespace for the Secrets of ClusterIssuers")
	nameservers := flag.String("dns01-recursive-nameservers", "", "comma-separated host:port list for DNS-01 self checks")
	nsOnly := flag.Bool("dns01-recursive-nameservers-only", false, "only query the recursive nameservers in DNS-01 self checks")
	checkRetry := flag.Duration("dns01-check-retry-period", 10*time.Second, "wait between DNS-01 propagation checks")
	minBackoff := flag.Duration("certificate-request-minimum-backoff-duration", time.Hour, "first retry delay after a failed issuance")
	ambient := flag.Bool("cluster-issuer-ambient-credentials", true, "ClusterIssuers may use ambient (environment) credentials")
	issuerAmbient := flag.Bool("issuer-ambient-credentials", false, "Issuers may use ambient (environment) credentials")
	controllers := flag.String("controllers", strings.Join(defaultControllers, ","), "comma-separated controllers to run")
	workers := flag.Int("concurrent-workers", 5, "workers per controller")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()

	logf.InitLogs()
	defer logf.FlushLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	ns := dnsutil.RecursiveNameservers
	if *nameservers != "" {
		ns = strings.Split(*nameservers, ",")
	}
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		Namespace:          *namespace,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 "quay.io/jetstack/cert-manager-acmesolver:v1.21.2",
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			DNS01Nameservers:                  ns,
			DNS01CheckAuthoritative:           !*nsOnly,
			DNS01CheckRetryPeriod:             *checkRetry,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        *clusterNS,
			ClusterIssuerAmbientCredentials: *ambient,
			IssuerAmbientCredentials:        *issuerAmbient,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: *minBackoff,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(1)
	}
	base, err := factory.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(1)
	}

	enabled := strings.Split(*controllers, ",")
	if *namespace != "" {
		enabled = slices.DeleteFunc(enabled, func(n string) bool { return n == "clusterissuers" })
	}
	errs := make(chan error, len(enabled))
	var wg sync.WaitGroup
	for name, construct := range controller.Known() {
		if !slices.Contains(enabled, name) {
			continue
		}
		iface, err := construct(factory)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cert-manager-controller: %s: %v\n", name, err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("starting controller", "controller", name)
			if err := iface.Run(*workers, ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	log.Info("cert-manager controllers started", "controllers", enabled)

	go func() { wg.Wait(); close(errs) }()
	if err := <-errs; err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(1)
	}
}
EOF
  fi
  build_bin "$dir" cert-manager-controller "$mod" . \
    "-X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION"
  # CRDs from the same module version. deploy/crds is marked incomplete upstream (it does not
  # validate on a 1.34 API server); the chart's CRD templates are the real ones, and their only
  # template directives are the crds.enabled/keep conditions and the labels, rendered here.
  if [[ ! -s "$dir/crds/cert-manager.io_certificates.yaml" ]]; then
    local src f out; src=$(cd "$mod" && module_dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")
    rm -rf "$dir/crds.tmp.$$" && mkdir -p "$dir/crds.tmp.$$"
    for f in "$src"/deploy/charts/cert-manager/templates/crd-*.yaml; do
      out="$dir/crds.tmp.$$/$(basename "$f" | sed 's/^crd-//')"
      sed -e '/{{- if .Values.crds.keep }}/,/{{- end }}/d' \
          -e '/^{{- if or .Values.crds.enabled .Values.installCRDs }}$/d' -e '/^{{- end }}$/d' \
          -e 's/^\( *\){{- include "cert-manager.crd-labels" . | nindent 4 }}$/\1app.kubernetes.io\/name: cert-manager/' \
          "$f" > "$out"
      if grep -q '{{' "$out"; then log "cert-manager CRDs: unexpected template directive left in $out"; exit 1; fi
    done
    rm -rf "$dir/crds" && mv "$dir/crds.tmp.$$" "$dir/crds"
    log "cert-manager CRDs: $dir/crds"
  fi
}

# copy_files <dest-dir> <file>...: copies module files (read-only in the module cache) into the
# cache entry, atomically as a directory.
copy_files() {
  local dest=$1; shift
  rm -rf "$dest.tmp.$$" && mkdir -p "$dest.tmp.$$"
  cp "$@" "$dest.tmp.$$/" && chmod 0644 "$dest.tmp.$$"/*
  rm -rf "$dest" && mv "$dest.tmp.$$" "$dest"
}

# ---- pebble (ACME test server) -------------------------------------------------------------
# Its test certificates (localhost serving pair and the minica root) come from the same module.
build_pebble() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/pebble" ]]; then
    write_gomod "$mod" pebblebin github.com/letsencrypt/pebble/v2 "$PEBBLE_VERSION"
  fi
  build_bin "$dir" pebble "$mod" github.com/letsencrypt/pebble/v2/cmd/pebble ""
  if [[ ! -s "$dir/certs/cert.pem" ]]; then
    local src; src=$(cd "$mod" && module_dir "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION")
    copy_files "$dir/certs" "$src/test/certs/localhost/cert.pem" "$src/test/certs/localhost/key.pem" \
      "$src/test/certs/pebble.minica.pem"
    log "pebble certs: $dir/certs"
  fi
}

# ---- CoreDNS (serves a Route 53 zone over real DNS, for ACME DNS-01) ------------------------
# Only the plugins this needs, in plugin.cfg's order (the order of Directives is the order of the
# plugin chain). The full plugin set pulls in every cloud SDK.
build_coredns() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/coredns" ]]; then
    write_gomod "$mod" corednsbin github.com/coredns/coredns "$COREDNS_VERSION"
    cat > "$mod/main.go" <<'EOF'
// Command coredns is CoreDNS with the plugins needed to serve Route 53 zones on loopback.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/route53"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func init() {
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "route53", "forward", "whoami"}
}

func main() { coremain.Run() }
EOF
  fi
  build_bin "$dir" coredns "$mod" . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
}

# ---- external-dns (publishes Service/Ingress/Gateway route hostnames in Route 53) ------------
# Upstream's main goes through controller.Execute, whose package imports the table of every
# provider, and several of their SDKs are refused by the proxy (the go command also refuses
# -overlay for files in the module cache). So this is our own small `main` over upstream's
# packages: the same flags and validation, sources, TXT registry and plan, with the AWS provider
# only and upstream's reconcile loop (run on an interval, and soon after a source event).
build_external_dns() {
  local dir=$1 mod="$1/build"
  export GOTOOLCHAIN=$EXTERNAL_DNS_TOOLCHAIN   # the module declares go 1.27; the approved way
  if [[ ! -x "$dir/bin/external-dns" ]]; then
    write_gomod "$mod" externaldnsbin sigs.k8s.io/external-dns "$EXTERNAL_DNS_VERSION" "$(cat <<EOF
// The openshift/api version external-dns pins is not served; this one is, and has the route API it uses.
replace github.com/openshift/api => github.com/openshift/api v0.0.0-20260810132456-8f52beb625b5
EOF
)"
    cat > "$mod/main.go" <<'EOF'
// Command external-dns is external-dns with the AWS (Route 53) provider only.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	log "github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"sigs.k8s.io/external-dns/endpoint"
	"sigs.k8s.io/external-dns/pkg/apis/externaldns"
	"sigs.k8s.io/external-dns/pkg/apis/externaldns/validation"
	"sigs.k8s.io/external-dns/plan"
	"sigs.k8s.io/external-dns/provider"
	"sigs.k8s.io/external-dns/provider/aws"
	registryfactory "sigs.k8s.io/external-dns/registry/factory"
	"sigs.k8s.io/external-dns/source"
	"sigs.k8s.io/external-dns/source/annotations"
	"sigs.k8s.io/external-dns/source/wrappers"
)

// aliasNormalizer does what upstream's provider factory wraps every provider in: alias A/AAAA
// records read back as alias=true, so the plan must see them that way or it updates them forever.
type aliasNormalizer struct{ provider.Provider }

func (p aliasNormalizer) AdjustEndpoints(eps []*endpoint.Endpoint) ([]*endpoint.Endpoint, error) {
	eps, err := p.Provider.AdjustEndpoints(eps)
	if err != nil {
		return nil, err
	}
	for _, ep := range eps {
		alias := ep.GetAliasProperty()
		if (ep.RecordType == endpoint.RecordTypeA && alias == endpoint.AliasA) ||
			(ep.RecordType == endpoint.RecordTypeAAAA && alias == endpoint.AliasAAAA) {
			ep.SetProviderSpecificProperty(endpoint.ProviderSpecificAlias, string(endpoint.AliasTrue))
		}
	}
	return eps, nil
}

func main() {
	cfg := externaldns.NewConfig()
	if err := cfg.ParseFlags(os.Args[1:]); err != nil {
		log.Fatalf("flag parsing error: %v", err)
	}
	if err := validation.ValidateConfig(cfg); err != nil {
		log.Fatalf("config validation failed: %v", err)
	}
	if cfg.Provider != externaldns.ProviderAWS {
		log.Fatalf("this build has the aws provider only, not %q", cfg.Provider)
	}
	annotations.SetAnnotationPrefix(cfg.AnnotationPrefix)
	level, err := log.ParseLevel(cfg.LogLevel)
	if err != nil {
		log.Fatal(err)
	}
	log.SetLevel(level)
	klog.SetLogger(logr.Discard())
	crlog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	go func() {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })
		mux.Handle("/metrics", promhttp.Handler())
		log.Fatal(http.ListenAndServe(cfg.MetricsAddress, mux))
	}()

	sCfg, err := source.NewSourceConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	src, err := wrappers.Build(ctx, sCfg)
	if err != nil {
		log.Fatal(err)
	}
	filter := endpoint.NewDomainFilterWithOptions(
		endpoint.WithDomainFilter(cfg.DomainFilter),
		endpoint.WithDomainExclude(cfg.DomainExclude),
		endpoint.WithRegexDomainFilter(cfg.RegexDomainFilter),
		endpoint.WithRegexDomainExclude(cfg.RegexDomainExclude),
	)
	var p provider.Provider
	p, err = aws.New(ctx, cfg, filter)
	if err != nil {
		log.Fatal(err)
	}
	if cfg.ProviderCacheTime > 0 {
		p = provider.NewCachedProvider(p, cfg.ProviderCacheTime)
	}
	reg, err := registryfactory.Select(cfg, aliasNormalizer{p})
	if err != nil {
		log.Fatal(err)
	}
	policy, ok := plan.Policies[cfg.Policy]
	if !ok {
		log.Fatalf("unknown policy: %s", cfg.Policy)
	}

	runOnce := func() error {
		current, err := reg.Records(ctx)
		if err != nil {
			return err
		}
		ctx := context.WithValue(ctx, provider.RecordsContextKey, current)
		desired, err := src.Endpoints(ctx)
		if err != nil {
			return err
		}
		desired, err = reg.AdjustEndpoints(desired)
		if err != nil {
			return err
		}
		changes := (&plan.Plan{
			Policies:       []plan.Policy{policy},
			Current:        current,
			Desired:        desired,
			DomainFilter:   endpoint.MatchAllDomainFilters{filter, reg.GetDomainFilter()},
			ManagedRecords: cfg.ManagedDNSRecordTypes,
			ExcludeRecords: cfg.ExcludeDNSRecordTypes,
			OwnerID:        reg.OwnerID(),
			OldOwnerID:     cfg.TXTOwnerOld,
		}).Calculate().Changes
		if !changes.HasChanges() {
			log.Info("All records are already up to date")
			return nil
		}
		return reg.ApplyChanges(ctx, changes)
	}

	kick := make(chan struct{}, 1)
	if cfg.UpdateEvents {
		src.AddEventHandler(ctx, func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		})
	}
	for {
		if cfg.Once {
			if err := runOnce(); err != nil {
				log.Fatal(err)
			}
			return
		}
		if err := runOnce(); err != nil {
			if !errors.Is(err, provider.SoftError) {
				log.Fatalf("failed to do run once: %v", err)
			}
			log.Errorf("Failed to do run once: %v", err)
		}
		timer := time.NewTimer(cfg.Interval)
		select {
		case <-ctx.Done():
			log.Info("Terminating main controller loop")
			return
		case <-timer.C:
		case <-kick:
			timer.Stop()
			// Batch a burst of events, as upstream does (--min-event-sync-interval).
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.MinEventSyncInterval):
			}
		}
	}
}
EOF
  fi
  build_bin "$dir" external-dns "$mod" . \
    "-X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$EXTERNAL_DNS_VERSION"
  unset GOTOOLCHAIN
}

# ---- external-secrets (ExternalSecret -> Secret, from AWS Secrets Manager and others) --------
build_external_secrets() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/external-secrets" ]]; then
    write_gomod "$mod" externalsecretsbin github.com/external-secrets/external-secrets "$EXTERNAL_SECRETS_VERSION" "$(cat <<EOF
// Upstream's own replace (external-secrets $EXTERNAL_SECRETS_VERSION go.mod).
replace github.com/Masterminds/sprig/v3 => github.com/external-secrets/sprig/v3 v3.3.0
EOF
)"
  fi
  build_bin "$dir" external-secrets "$mod" github.com/external-secrets/external-secrets ""
  if [[ ! -s "$dir/crds/bundle.yaml" ]]; then
    local src; src=$(cd "$mod" && module_dir "github.com/external-secrets/external-secrets@$EXTERNAL_SECRETS_VERSION")
    copy_files "$dir/crds" "$src/deploy/crds/bundle.yaml"
    log "external-secrets CRDs: $dir/crds"
  fi
}

# ---- Gateway API CRDs (no binary) ------------------------------------------------------------
# Standard channel, plus the experimental TLSRoute and TCPRoute (in experimental/, used when a
# gateway serves TLS passthrough or TCP ports).
build_gateway_api() {
  local dir=$1
  if [[ -s "$dir/crds/standard/gateway.networking.k8s.io_httproutes.yaml" && -s "$dir/crds/experimental/gateway.networking.k8s.io_tlsroutes.yaml" ]]; then
    log "gateway-api CRDs: present, skipping ($dir/crds)"
    return 0
  fi
  local src; src=$(cd /tmp && GOFLAGS= module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
  [[ -n "$src" ]] || { log "gateway-api: cannot download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"; exit 1; }
  mkdir -p "$dir/crds"
  copy_files "$dir/crds/standard" "$src"/config/crd/standard/gateway.networking.k8s.io_*.yaml
  copy_files "$dir/crds/experimental" "$src/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml" \
    "$src/config/crd/experimental/gateway.networking.k8s.io_tcproutes.yaml"
  echo "crds built=$(date -u +%FT%TZ)" >> "$dir/build-info.txt"
  log "gateway-api CRDs: $dir/crds"
}

# ---- Prometheus (metrics of observability stacks) ---------------------------------------------
# Upstream's own cmd/prometheus, built from the module through a wrapper go.mod. The build tags
# keep only the file, http and Kubernetes service discovery (plugins/ honours remove_all_sd and
# enable_<name>_sd), which drops every cloud SDK from the build; the web UI assets are not
# embedded (no builtinassets tag), the HTTP API is complete without them.
build_prometheus() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/prometheus" ]]; then
    write_gomod "$mod" prometheusbin github.com/prometheus/prometheus "$PROMETHEUS_VERSION"
    write_tools_go "$mod" github.com/prometheus/prometheus/cmd/prometheus
  fi
  BUILD_TAGS=remove_all_sd,enable_kubernetes_sd build_bin "$dir" prometheus "$mod" github.com/prometheus/prometheus/cmd/prometheus \
    "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v} -X github.com/prometheus/common/version.Branch=threeport"
}

# ---- VictoriaLogs (logs of observability stacks) ----------------------------------------------
# The log store. Loki (github.com/grafana/loki/v3) is AGPL-licensed and may not be used here;
# VictoriaLogs (Apache-2.0) accepts Loki's push API (/insert/loki/api/v1/push) and is queried
# with LogsQL (/select/logsql/query).
build_victoria_logs() {
  local dir=$1 mod="$1/build"
  if [[ ! -x "$dir/bin/victoria-logs" || ! -x "$dir/bin/vlagent" ]]; then
    write_gomod "$mod" victorialogsbin github.com/VictoriaMetrics/VictoriaLogs "$VICTORIA_LOGS_VERSION"
    write_tools_go "$mod" github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs \
      github.com/VictoriaMetrics/VictoriaLogs/app/vlagent
  fi
  build_bin "$dir" victoria-logs "$mod" github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs ""
  # The log shipper: vlagent (same module) tails log files and forwards them to VictoriaLogs.
  build_bin "$dir" vlagent "$mod" github.com/VictoriaMetrics/VictoriaLogs/app/vlagent ""
}

START_ALL=$(date +%s)
for p in "${SELECTED[@]}"; do
  t0=$(date +%s)
  with_lock "$p" "build_${p//-/_}"
  log "$p $(peer_version "$p"): ready in $(( $(date +%s) - t0 ))s -> $(peer_dir "$p")"
done
log "done: ${SELECTED[*]} (wall $(( $(date +%s) - START_ALL ))s)"
for p in "${SELECTED[@]}"; do echo "$p $(peer_dir "$p")"; done
