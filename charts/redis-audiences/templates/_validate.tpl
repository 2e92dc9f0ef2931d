{{/*
Values that contradict each other stop the render with a sentence naming
them; values.schema.json has already checked each value's type.
*/}}
{{- define "redis-audiences.validate" -}}
{{- $values := .Values }}
{{- $peering := include "redis-audiences.peering" . }}

{{- if and $values.serviceMonitor.enabled (not $values.metrics.enabled) }}
{{- fail (print
  "serviceMonitor.enabled is true but metrics.enabled is false: a ServiceMonitor needs "
  "the metrics endpoint; enable metrics or disable the ServiceMonitor.") }}
{{- end }}

{{- if and (gt (int $values.replicaCount) 1) (not $values.peering.enabled) }}
{{- fail (print
  (printf "replicaCount is %d but peering.enabled is false: " (int $values.replicaCount))
  "without Kopf peering every replica would serve the same resources; "
  "set replicaCount to 1 or enable peering.") }}
{{- end }}

{{- if and $values.crds.keep (not $values.crds.install) }}
{{- fail (print
  "crds.keep is true but crds.install is false: the chart can only keep CRDs it installs; "
  "set crds.keep to false too.") }}
{{- end }}

{{- if not (has $values.strategy.type (list "Recreate" "RollingUpdate")) }}
{{- fail (printf "strategy.type %q is not a Deployment strategy; use Recreate or RollingUpdate."
  $values.strategy.type) }}
{{- end }}

{{- if and (eq $values.strategy.type "RollingUpdate") (not $peering) }}
{{- fail (print
  "strategy.type is RollingUpdate but the replicas do not use peering: during an update two "
  "operators would serve the same resources; use Recreate, or more than one replica.") }}
{{- end }}

{{- $metricsPort := int $values.metrics.port }}
{{- if and $values.metrics.enabled (eq $metricsPort (int $values.livenessProbe.port)) }}
{{- fail (print
  (printf "metrics.port and livenessProbe.port are both %d: " $metricsPort)
  "the metrics and liveness endpoints need different ports.") }}
{{- end }}

{{- $account := $values.serviceAccount }}
{{- if and $values.rbac.create (not $account.create) (not $account.name) }}
{{- fail (print
  "rbac.create is true but serviceAccount.create is false and serviceAccount.name is empty: "
  "the permissions would go to the namespace's default service account; "
  "name the service account to bind.") }}
{{- end }}
{{- end }}
