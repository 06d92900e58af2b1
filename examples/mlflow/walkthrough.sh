#!/usr/bin/env bash
# Starts MLflow (SQL backend, webhooks allowed to loopback) and govledger with
# the MLflow bridge in a scratch folder, issues the tokens, creates the
# webhook, and runs walkthrough.py. Needs `pip install mlflow scikit-learn
# ./clients/python` and a built govledger (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
GOVLEDGER=${GOVLEDGER:-target/release/govledger}
[ -x "$GOVLEDGER" ] || GOVLEDGER=target/debug/govledger
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
printf '%s' "$secret" > "$work/mlflow.secret"

export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true
python3 -m mlflow server --host 127.0.0.1 --port 5055 --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --default-artifact-root "$work/artifacts" > "$work/mlflow.log" 2>&1 &
export MLFLOW_TRACKING_URI=http://127.0.0.1:5055

for who in dana:data_scientist rita:risk_officer ravi:risk_officer; do
  "$GOVLEDGER" token issue --sub "${who%%:*}" --role "${who#*:}" --ttl 1h --data-dir "$work/ledger" > "$work/${who%%:*}.token" 2>/dev/null
done
"$GOVLEDGER" serve --bind 127.0.0.1:8085 --data-dir "$work/ledger" \
  --mlflow-url "$MLFLOW_TRACKING_URI" --mlflow-webhook-secret-file "$work/mlflow.secret" > "$work/govledger.log" 2>&1 &
export GOVLEDGER_URL=http://127.0.0.1:8085

until curl -sf "$MLFLOW_TRACKING_URI/health" > /dev/null; do sleep 0.5; done
until curl -sf "$GOVLEDGER_URL/readyz" > /dev/null; do sleep 0.2; done
python3 - "$secret" <<'PY'
import sys
from mlflow import MlflowClient
MlflowClient().create_webhook(name="govledger", url="http://127.0.0.1:8085/api/v1/integrations/mlflow",
    events=["registered_model.created", "model_version.created", "model_version_tag.set",
            "model_version_alias.created", "model_version_alias.deleted"], secret=sys.argv[1])
PY
DS_TOKEN=$(cat "$work/dana.token") RISK1_TOKEN=$(cat "$work/rita.token") RISK2_TOKEN=$(cat "$work/ravi.token") \
  python3 examples/mlflow/walkthrough.py
