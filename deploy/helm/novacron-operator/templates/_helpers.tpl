{{/* The chart's name. */}}
{{- define "novacron-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart's name. */}}
{{- define "novacron-operator.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "novacron-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "novacron-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: novacron
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "novacron-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "novacron-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "novacron-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "novacron-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret of a cloud's credentials ("" when the cloud has none): existingSecret, or the one the chart writes. */}}
{{- define "novacron-operator.providerSecret" -}}
{{- $root := index . 0 }}{{- $cloud := index . 1 }}
{{- $p := index $root.Values.providers $cloud }}
{{- if $p.existingSecret }}
{{- $p.existingSecret }}
{{- else if eq $cloud "aws" }}
{{- if or $p.accessKeyId $p.secretAccessKey }}{{ include "novacron-operator.fullname" $root }}-aws{{ end }}
{{- else if eq $cloud "azure" }}
{{- if or $p.clientId $p.clientSecret }}{{ include "novacron-operator.fullname" $root }}-azure{{ end }}
{{- else if eq $cloud "gcp" }}
{{- if $p.credentialsJson }}{{ include "novacron-operator.fullname" $root }}-gcp{{ end }}
{{- end }}
{{- end }}
