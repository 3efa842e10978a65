{{/*
The prefix of every object's name: fullnameOverride, else the release name when it contains
"tidemark" (so `helm install tidemark` gives the same names as config/: tidemark-operator, …),
else <release>-tidemark.
*/}}
{{- define "tidemark.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's name: Deployment, ServiceAccount, ClusterRole/Role and their bindings. */}}
{{- define "tidemark.operatorName" -}}
{{- printf "%s-operator" (include "tidemark.fullname" .) -}}
{{- end -}}

{{- define "tidemark.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tidemark.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object (config/ uses the first three too). */}}
{{- define "tidemark.labels" -}}
app.kubernetes.io/name: tidemark
app.kubernetes.io/part-of: tidemark
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "tidemark.operatorLabels" -}}
{{ include "tidemark.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
Selector of the operator pods. The component keeps worker pods out: they are labelled
app.kubernetes.io/name=tidemark too, with their resource's name as instance and their
operation as component.
*/}}
{{- define "tidemark.selectorLabels" -}}
app.kubernetes.io/name: tidemark
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tidemark.imageTag" -}}
{{- default .Chart.AppVersion (toString .Values.image.tag) -}}
{{- end -}}

{{- define "tidemark.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "tidemark.imageTag" .) -}}
{{- end -}}

{{- define "tidemark.workerImage" -}}
{{- $repository := default .Values.image.repository .Values.worker.image.repository -}}
{{- $tag := default (include "tidemark.imageTag" .) (toString .Values.worker.image.tag) -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* Comma-separated names of the worker pods' pull secrets (TIDEMARK_WORKER_IMAGE_PULL_SECRETS). */}}
{{- define "tidemark.workerPullSecrets" -}}
{{- $secrets := .Values.worker.imagePullSecrets | default .Values.imagePullSecrets -}}
{{- $names := list -}}
{{- range $secrets -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/*
The watched namespaces, comma-separated (TIDEMARK_WATCH_NAMESPACE): watchNamespace, then each of
watchNamespaces, each once. Empty: every namespace.
*/}}
{{- define "tidemark.watchNamespaces" -}}
{{- $names := list -}}
{{- with .Values.watchNamespace }}{{ $names = append $names . }}{{ end -}}
{{- range .Values.watchNamespaces }}{{ $names = append $names . }}{{ end -}}
{{- join "," ($names | uniq) -}}
{{- end -}}
