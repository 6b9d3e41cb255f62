#!/usr/bin/env bash
# Send every sample event in this folder to a running awfdrs, one request per file, and print
# each answer as "<file> <JSON answer>". Any answer other than 2xx stops the script (exit 22).
#
#   AWFDRS_API_KEY   an ingest key (awfdrs keys create --tenant demo --role ingest)
#   AWFDRS_API_URL   the API; default: api_url in .awfdrs/stack.json (what `make run` writes)
#
#   AWFDRS_WORKFLOW_PAYMENTS, _INVOICING, _INVENTORY   the workflow ids native.json names
#                    (its *_WORKFLOW_ID placeholders); default: looked up with
#                    `awfdrs workflows list --tenant ${AWFDRS_TENANT:-demo} --json`
#
# The tenant of the key needs the workflows payments, invoicing and inventory (the demo
# tenant of `make run` has them). The other formats name workflows by name; the native
# format takes ids only. Sending twice is safe: the second time every event is a
# duplicate, because every sample keeps its occurred_at (and the rest of its content) fixed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
stack_file="${AWFDRS_STACK_FILE:-.awfdrs/stack.json}"

api="${AWFDRS_API_URL:-}"
if [ -z "$api" ] && [ -f "$stack_file" ]; then
  api="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("api_url", ""))' "$stack_file")"
fi
if [ -z "$api" ]; then
  echo "no API URL: set AWFDRS_API_URL or start the stack with 'make run' (writes $stack_file)" >&2
  exit 2
fi
key="${AWFDRS_API_KEY:-}"
if [ -z "$key" ]; then
  echo "no key: export AWFDRS_API_KEY=\$(awfdrs keys create --tenant demo --role ingest --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"key\"])')" >&2
  exit 2
fi

workflow_id() {  # name -> id, from the environment or the awfdrs CLI
  local var="AWFDRS_WORKFLOW_${1^^}"
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
  else
    awfdrs workflows list --tenant "${AWFDRS_TENANT:-demo}" --json |
      python3 -c 'import json,sys; print(next(w["id"] for w in json.load(sys.stdin) if w["name"] == sys.argv[1]))' "$1"
  fi
}

post() {  # file, path, content type, extra curl arguments...
  local file="$1" path="$2" type="$3"
  shift 3
  printf '%s ' "$file"
  curl -sS --fail-with-body "$api$path" -H "Authorization: Bearer $key" \
    -H "Content-Type: $type" "$@" --data-binary "@$here/$file"
  echo
}

# Native: {"events": [...]}, the workflow by id, the tenant the key's.
printf '%s ' native.json
sed -e "s/PAYMENTS_WORKFLOW_ID/$(workflow_id payments)/" \
    -e "s/INVOICING_WORKFLOW_ID/$(workflow_id invoicing)/" \
    -e "s/INVENTORY_WORKFLOW_ID/$(workflow_id inventory)/" "$here/native.json" |
  curl -sS --fail-with-body "$api/v1/events" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' --data-binary @-
echo
# CloudEvents 1.0, structured (one event) and batched (a JSON array).
post cloudevents-structured.json /v1/cloudevents application/cloudevents+json
post cloudevents-batch.json /v1/cloudevents application/cloudevents-batch+json
# CloudEvents 1.0, binary: the attributes in ce-* headers, the body is the event's data.
post cloudevents-binary.json /v1/cloudevents application/json \
  -H 'ce-specversion: 1.0' \
  -H 'ce-id: evt_01JE8Z9R5T2W8Y4A6C1E3G7J9K' \
  -H 'ce-source: //warehouse.example/stock-sync' \
  -H 'ce-type: com.warehouse.inventory.sync.timeout' \
  -H 'ce-time: 2026-12-01T09:24:05Z' \
  -H 'ce-workflow: inventory' \
  -H 'ce-correlationid: stock-sync-eu-west'
# Prometheus Alertmanager's webhook (version 4); the workflow in the query (or a label).
post alertmanager.json '/v1/alertmanager?workflow=inventory' application/json
# PagerDuty Events API v2: the routing_key is the awfdrs key (this sample's placeholder is
# replaced on the way; a real integration is configured with the key itself).
printf '%s ' pagerduty.json
sed "s/YOUR_INGEST_KEY/$key/" "$here/pagerduty.json" |
  curl -sS --fail-with-body "$api/v2/enqueue" -H 'Content-Type: application/json' --data-binary @-
echo
