#!/usr/bin/env bash
# Writes gitops/argocd/argocd-cm.yaml: the Argo CD health check as an argocd-cm entry.
set -euo pipefail
cd "$(dirname "$0")/.."
lua=gitops/argocd/resource_customizations/durablejob.dev/DurableJob/health.lua
{
  cat <<'HEAD'
# Merge into Argo CD's argocd-cm ConfigMap (or the Argo CD Helm chart's configs.cm) to give
# DurableJobs their health in Argo CD. Generated from
# resource_customizations/durablejob.dev/DurableJob/health.lua by `make gitops`; a test checks.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: argocd
data:
  resource.customizations.health.durablejob.dev_DurableJob: |
HEAD
  sed -e 's/^\(.\)/    \1/' "$lua"
} > gitops/argocd/argocd-cm.yaml
