{{/* The release's base name. */}}
{{- define "durablejob.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "durablejob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; call with (dict "root" $ "component" "operator"). */}}
{{- define "durablejob.labels" -}}
{{ include "durablejob.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: durablejob
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "durablejob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "durablejob.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "durablejob.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "durablejob.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "durablejob.runnerServiceAccount" -}}
{{- default (printf "%s-runner" (include "durablejob.fullname" .)) .Values.runner.serviceAccount.name -}}
{{- end -}}

{{- define "durablejob.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Temporal connection: environment of both containers. */}}
{{- define "durablejob.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- with .Values.temporal.tls }}
{{- if .enabled }}
- name: TEMPORAL_TLS
  value: "true"
{{- if .secretName }}
{{- if .caKey }}
- name: TEMPORAL_TLS_SERVER_CA_CERT_PATH
  value: /etc/durablejob/temporal-tls/{{ .caKey }}
{{- end }}
{{- if .certKey }}
- name: TEMPORAL_TLS_CLIENT_CERT_PATH
  value: /etc/durablejob/temporal-tls/{{ .certKey }}
- name: TEMPORAL_TLS_CLIENT_KEY_PATH
  value: /etc/durablejob/temporal-tls/{{ .keyKey }}
{{- end }}
{{- end }}
{{- if .serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ .serverName | quote }}
{{- end }}
{{- end }}
{{- end }}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- end -}}

{{- define "durablejob.temporalArgs" -}}
{{- if .Values.temporal.apiKey.secretName }}
- --temporal-api-key-file=/etc/durablejob/temporal-api-key/{{ .Values.temporal.apiKey.secretKey }}
{{- end }}
{{- end -}}

{{- define "durablejob.temporalMounts" -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  mountPath: /etc/durablejob/temporal-tls
  readOnly: true
{{- end }}
{{- if .Values.temporal.apiKey.secretName }}
- name: temporal-api-key
  mountPath: /etc/durablejob/temporal-api-key
  readOnly: true
{{- end }}
{{- end -}}

{{- define "durablejob.temporalVolumes" -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.secretName }}
{{- end }}
{{- if .Values.temporal.apiKey.secretName }}
- name: temporal-api-key
  secret:
    secretName: {{ .Values.temporal.apiKey.secretName }}
    items:
      - key: {{ .Values.temporal.apiKey.secretKey }}
        path: {{ .Values.temporal.apiKey.secretKey }}
{{- end }}
{{- end -}}

{{/* The scheduling fields of a pod; call with the component's values. */}}
{{- define "durablejob.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}
