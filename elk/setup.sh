#!/usr/bin/env bash
# Load modelgate's ILM policy, index templates and Kibana objects through the HTTP APIs.
# Needs ELASTIC_PASSWORD (the elastic user); ES_URL, KIBANA_URL and CA default to the
# compose stack on this host. Safe to run again: every call is a PUT or an overwrite.
set -euo pipefail
cd "$(dirname "$0")"
: "${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD}"
ES_URL=${ES_URL:-https://127.0.0.1:9200}
KIBANA_URL=${KIBANA_URL:-http://127.0.0.1:5601}
CA=${CA:-}   # the stack's CA certificate (docker compose cp setup:/usr/share/elasticsearch/config/certs/ca/ca.crt .)
curl_es() {
    curl --fail --silent --show-error ${CA:+--cacert "$CA"} -u "elastic:${ELASTIC_PASSWORD}" \
        -H 'Content-Type: application/json' "$@"
}
curl_es -X PUT "$ES_URL/_ilm/policy/modelgate-logs" -d @elasticsearch/ilm-policy.json
curl_es -X PUT "$ES_URL/_component_template/modelgate-logs-settings" -d @elasticsearch/component-template-settings.json
curl_es -X PUT "$ES_URL/_component_template/modelgate-logs-mappings" -d @elasticsearch/component-template-mappings.json
curl_es -X PUT "$ES_URL/_index_template/logs-modelgate" -d @elasticsearch/index-template.json
curl --fail --silent --show-error -u "elastic:${ELASTIC_PASSWORD}" -H 'kbn-xsrf: true' \
    -X POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
    --form file=@kibana/saved-objects.ndjson
echo
echo "loaded: ILM policy, templates, data view, 3 saved searches, 6 visualizations, 1 dashboard"
