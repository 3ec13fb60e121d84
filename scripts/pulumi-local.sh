#!/usr/bin/env bash
# Run a Pulumi command for one stack of this project on this machine: state in a local file
# backend inside the repository, the local Docker engine, and the policy pack for that stack.
# Usage: scripts/pulumi-local.sh STACK up|preview|destroy|check (check: the CLI and the engine
# answer, and nothing else is done)
set -euo pipefail

stack=${1:?usage: $0 STACK up|preview|destroy|check}
action=${2:?usage: $0 STACK up|preview|destroy|check}
root=$(cd "$(dirname "$0")/.." && pwd)
case "$action" in
  up | preview | destroy | check) ;;
  *) echo "error: unknown action $action (up, preview, destroy or check)" >&2; exit 64 ;;
esac

if ! command -v pulumi >/dev/null 2>&1; then
  echo "error: the pulumi CLI is not installed; see https://www.pulumi.com/docs/install/" >&2
  exit 127
fi
if ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine answers (is dockerd running, and may this user use it?)" >&2
  exit 69
fi

[[ "$action" == check ]] && exit 0

export PULUMI_BACKEND_URL="file://${root}/.pulumi-state"
mkdir -p "${root}/.pulumi-state"
if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  if [[ "$stack" == "dev" ]]; then
    # The dev stack holds only generated lab secrets; a fixed passphrase keeps it one command.
    export PULUMI_CONFIG_PASSPHRASE="hospital-dev-lab"
  else
    echo "error: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE for stack $stack" >&2
    exit 64
  fi
fi

cd "$root"
pulumi stack select --create "$stack" >/dev/null
# The stack's own pack config, else its environment's (as `python -m tools check` chooses);
# prod's, mandatory, when neither exists.
environment=$(sed -n "s/^[[:space:]]*hospital:environment:[[:space:]]*[\"']\{0,1\}\([a-z]*\).*/\1/p" \
  "Pulumi.${stack}.yaml" 2>/dev/null | head -n 1)
pack_config="${root}/policies/config/${stack}.json"
[[ -f "$pack_config" ]] || pack_config="${root}/policies/config/${environment:-prod}.json"
[[ -f "$pack_config" ]] || pack_config="${root}/policies/config/prod.json"
policy=(--policy-pack "${root}/policies" --policy-pack-config "$pack_config")
case "$action" in
  up) pulumi up --yes "${policy[@]}" ;;
  preview) pulumi preview "${policy[@]}" ;;
  destroy) pulumi destroy --yes ;;
esac
