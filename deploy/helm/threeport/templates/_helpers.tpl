{{/* Names: <release>-threeport unless the release name already contains the chart name. */}}
{{- define "threeport.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "threeport.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (api, controllers, postgresql). */}}
{{- define "threeport.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "threeport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "threeport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "threeport.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "threeport.apiServiceName" -}}{{ include "threeport.fullname" . }}-api{{- end -}}

{{/* The Secret (name, key) holding the database URL; fails at install time when there is none. */}}
{{- define "threeport.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if or .Values.database.url .Values.postgresql.enabled -}}
{{- include "threeport.fullname" . }}-database
{{- else -}}
{{- fail "database.url is required: set database.url (or database.existingSecret naming a Secret with the URL under database.existingSecretKey), or postgresql.enabled=true for an evaluation-only database" -}}
{{- end -}}
{{- end -}}
{{- define "threeport.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{/* The Secret holding ENCRYPTION_KEY; an external database needs one supplied. */}}
{{- define "threeport.encryptionSecretName" -}}
{{- if .Values.encryption.existingSecret -}}
{{- .Values.encryption.existingSecret -}}
{{- else if or .Values.encryption.key .Values.postgresql.enabled -}}
{{- include "threeport.fullname" . }}-encryption
{{- else -}}
{{- fail "encryption.key is required with an external database: set encryption.key (base64 of 32 bytes: openssl rand -base64 32) or encryption.existingSecret; every replica must share it and it must not change" -}}
{{- end -}}
{{- end -}}
{{- define "threeport.encryptionSecretKey" -}}
{{- if .Values.encryption.existingSecret -}}{{ .Values.encryption.existingSecretKey }}{{- else -}}key{{- end -}}
{{- end -}}

{{- define "threeport.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "threeport.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/*
An existing Secret's data (base64 values) from the cluster, so generated keys, passwords and
certificates survive upgrades. Empty under `helm template` (no cluster).
*/}}
{{- define "threeport.existingSecretData" -}}
{{- $s := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if $s -}}{{- toJson $s.data -}}{{- else -}}{}{{- end -}}
{{- end -}}

{{/* The container spec shared by both Deployments; .role is api or controllers. */}}
{{- define "threeport.container" -}}
{{- $v := .root.Values -}}
{{- $c := index $v .role -}}
- name: threeport
  image: {{ include "threeport.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    - server
    - --role={{ .role }}
    - --host=0.0.0.0
    - --port={{ $v.api.port }}
    - --metrics-port={{ $v.metrics.port }}
    - --data-dir=/home/threeport/data
    - --log-level={{ $v.logLevel }}
    {{- if $v.tls.enabled }}
    - --tls-dir=/etc/threeport/tls
    {{- else }}
    - --no-auth
    {{- end }}
    {{- if and (eq .role "controllers") $v.controllers.reconcileConcurrency }}
    - --reconcile-concurrency={{ $v.controllers.reconcileConcurrency }}
    {{- end }}
    {{- range $c.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: THREEPORT_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "threeport.databaseSecretName" .root }}
          key: {{ include "threeport.databaseSecretKey" .root }}
    - name: ENCRYPTION_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "threeport.encryptionSecretName" .root }}
          key: {{ include "threeport.encryptionSecretKey" .root }}
    - name: AWS_EC2_METADATA_DISABLED
      value: "true"
  ports:
    {{- if eq .role "api" }}
    - name: api
      containerPort: {{ $v.api.port }}
    {{- end }}
    - name: metrics
      containerPort: {{ $v.metrics.port }}
  # The plain-HTTP metrics listener answers the probes (the API port demands a client certificate).
  startupProbe:
    httpGet: { path: /healthz, port: metrics }
    periodSeconds: 2
    failureThreshold: 60
  livenessProbe:
    httpGet: { path: /healthz, port: metrics }
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: { path: /readyz, port: metrics }
    periodSeconds: 5
    failureThreshold: 2
  resources:
    {{- toYaml $c.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - { name: data, mountPath: /home/threeport/data }
    - { name: tmp, mountPath: /tmp }
    {{- if $v.tls.enabled }}
    - { name: tls, mountPath: /etc/threeport/tls, readOnly: true }
    {{- end }}
{{- end -}}

{{- define "threeport.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "threeport.tlsSecretName" . }}
    defaultMode: 0440
    items:
      - { key: ca.crt, path: ca.crt }
      - { key: tls.crt, path: server.crt }
      - { key: tls.key, path: server.key }
{{- end }}
{{- end -}}
