{{/*
Names and labels are those of the kustomize install (deploy/controller, deploy/router), not derived
from the release name: the SDKs hard-code the router's Service and label, and tests/e2e/tests/helm.rs
checks that the default values render kustomize's objects.
*/}}

{{/* The namespace of every namespaced object, and of the RBAC subjects. */}}
{{- define "agent-sandbox.namespace" -}}
{{ .Values.namespace.name }}
{{- end }}

{{/*
The labels Helm adds to each object's metadata, on top of kustomize's. Never used in a selector or a
pod template: selectors equal kustomize's, so a kustomize install can be taken over by a release (and
given back), and the pods stay the same.
*/}}
{{- define "agent-sandbox.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The controller's selector (and kustomize's labels on every controller object). */}}
{{- define "agent-sandbox.controller.selectorLabels" -}}
app.kubernetes.io/name: agent-sandbox
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels of every controller object. */}}
{{- define "agent-sandbox.controller.labels" -}}
{{ include "agent-sandbox.controller.selectorLabels" . }}
{{ include "agent-sandbox.helmLabels" . }}
{{- end }}

{{/* The router's selector: `app: sandbox-router` is what the managed NetworkPolicy admits. */}}
{{- define "agent-sandbox.router.selectorLabels" -}}
app: sandbox-router
{{- end }}

{{/* Labels of every router object but the Deployment, its pods and the Service. */}}
{{- define "agent-sandbox.router.labels" -}}
app.kubernetes.io/name: agent-sandbox
app.kubernetes.io/component: router
{{ include "agent-sandbox.helmLabels" . }}
{{- end }}

{{/* Labels of the router's pods (and, with Helm's, of its Deployment and Service). */}}
{{- define "agent-sandbox.router.podLabels" -}}
{{ include "agent-sandbox.router.selectorLabels" . }}
app.kubernetes.io/name: agent-sandbox
app.kubernetes.io/component: router
{{- end }}

{{/*
Pod labels: the chart's own (`fixed`, YAML text) and the user's `extra`; the chart's win, so a user
label can never break the Deployment's selector.
*/}}
{{- define "agent-sandbox.podLabels" -}}
{{- toYaml (merge (fromYaml .fixed) (.extra | default dict)) }}
{{- end }}

{{/* `repository:tag` of a component's image; the tag defaults to the chart's appVersion. */}}
{{- define "agent-sandbox.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .chart.AppVersion) }}
{{- end }}

{{/*
The scheduling and placement fields of a component's pod spec, each only when set, so the defaults
add nothing to kustomize's pod spec. `.values` is .Values.controller or .Values.router.
*/}}
{{- define "agent-sandbox.podPlacement" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
