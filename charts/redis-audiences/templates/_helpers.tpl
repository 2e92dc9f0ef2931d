{{/*
Names, labels and the derived settings every template shares.
*/}}

{{- define "redis-audiences.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: object names, and the name of the Kopf peering object.
*/}}
{{- define "redis-audiences.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "redis-audiences.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "redis-audiences.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redis-audiences.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "redis-audiences.labels" -}}
helm.sh/chart: {{ include "redis-audiences.chart" . }}
{{ include "redis-audiences.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "redis-audiences.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "redis-audiences.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The watched namespaces, duplicates dropped; empty means every namespace.
*/}}
{{- define "redis-audiences.namespaces" -}}
{{- toJson (uniq .Values.watchNamespaces) }}
{{- end }}

{{- define "redis-audiences.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when the replicas coordinate through Kopf peering, else empty.
*/}}
{{- define "redis-audiences.peering" -}}
{{- if and .Values.peering.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
"true" when the ServiceMonitor is wanted and the cluster serves its API.
*/}}
{{- define "redis-audiences.serviceMonitor" -}}
{{- $api := "monitoring.coreos.com/v1/ServiceMonitor" }}
{{- if and .Values.serviceMonitor.enabled (.Capabilities.APIVersions.Has $api) }}true{{ end }}
{{- end }}

{{/*
The CRD objects of the chart, one YAML document each: the product's CRDs
(copies of the project's crds/, kept equal by the chart tests) and, under
peering, the one Kopf peering CRD the watch scope needs: KopfPeering for
namespaces listed, ClusterKopfPeering for all. `crds.keep` adds the
annotation that makes Helm leave them on uninstall.
*/}}
{{- define "redis-audiences.crds" -}}
{{- $paths := list }}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $paths = append $paths $path }}
{{- end }}
{{- if and (include "redis-audiences.peering" .) .Values.crds.kopfPeering }}
{{- $plural := ternary "kopfpeerings" "clusterkopfpeerings" (gt (len .Values.watchNamespaces) 0) }}
{{- $paths = append $paths (printf "files/kopf/%s.kopf.dev.yaml" $plural) }}
{{- end }}
{{- range $paths }}
{{- $crd := $.Files.Get . | fromYaml }}
{{- if $.Values.crds.keep }}
{{- $annotations := $crd.metadata.annotations | default dict }}
{{- $_ := set $annotations "helm.sh/resource-policy" "keep" }}
{{- $_ := set $crd.metadata "annotations" $annotations }}
{{- end }}
---
{{ toYaml $crd }}
{{- end }}
{{- end }}
