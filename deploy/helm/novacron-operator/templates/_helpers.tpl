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

{{/* The operator's providers file: providers.members, or the in-memory members (providers.inMemory). */}}
{{- define "novacron-operator.providersFile" -}}
{{- $p := .Values.providers }}
{{- if and $p.members $p.inMemory }}
{{- fail "providers: give members or inMemory, not both" }}
{{- else if $p.members }}
{{- toYaml (dict "providers" $p.members) }}
{{- else if $p.inMemory }}
{{- .Files.Get "files/providers-in-memory.yaml" }}
{{- else }}
{{- fail "providers.members is empty: list the clouds the operator may create VMs in (values.yaml, deploy/providers/example.yaml), or set providers.inMemory=true to try it on in-memory clouds (no real VM is created)" }}
{{- end }}
{{- end }}

{{/* The Secrets the members name in credentialsSecret: sorted, unique, one a line. Checks the
Secrets the chart writes against the keys their members' kinds read. */}}
{{- define "novacron-operator.credentialSecrets" -}}
{{- $secrets := .Values.providers.secrets | default dict }}
{{- $names := list }}
{{- range $m := .Values.providers.members }}
{{- with $m.credentialsSecret }}
{{- $names = append $names . }}
{{- $s := index $secrets . }}
{{- if and $s $s.stringData }}
{{- $keys := list }}
{{- if eq $m.kind "aws" }}{{ $keys = list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
{{- else if eq $m.kind "azure" }}{{ $keys = list "AZURE_TENANT_ID" "AZURE_CLIENT_ID" "AZURE_CLIENT_SECRET" "AZURE_SUBSCRIPTION_ID" }}
{{- else if eq $m.kind "gcp" }}{{ $keys = list "key.json" }}
{{- end }}
{{- $name := . }}
{{- range $keys }}
{{- if not (hasKey $s.stringData .) }}
{{- fail (printf "providers.secrets.%s.stringData: member %s (kind %s) reads key %s" $name $m.name $m.kind .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $_ := $secrets }}
{{- if not (has $name $names) }}
{{- fail (printf "providers.secrets.%s: no member names it as credentialsSecret" $name) }}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | join "\n" }}
{{- end }}
