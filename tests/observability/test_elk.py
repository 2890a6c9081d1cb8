"""elk/ checked offline (Elasticsearch, Logstash and Kibana cannot run here): every field the
pipeline, the index template and the Kibana objects use is in the log-line schema or in
ECS (Elastic's @elastic/ecs package) with a compatible type; every saved-object reference
resolves; the pipeline parses; the compose file binds only loopback and has no default password."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from lscl.lang import LsclBlock, LsclConditions, LsclSelector
from lscl.parser import parse_lscl

from tests.services import ROOT

ELK = ROOT / "elk"
SCHEMA = json.loads((ELK / "schema" / "log-line.schema.json").read_text())
# The schema's JSON types, and the Elasticsearch types each may be stored as.
COMPATIBLE = {
    "integer": {"long", "integer", "keyword", "date_nanos"},
    "string": {"keyword", "match_only_text", "text", "wildcard", "ip", "date", "constant_keyword"},
    "array": {"keyword"},
}


@pytest.fixture(scope="module")
def ecs() -> dict[str, str]:
    """ECS field name -> Elasticsearch type, from the npm package (installed by make test)."""
    if not (ELK / "node_modules" / "@elastic" / "ecs").exists():
        pytest.fail("elk/node_modules is missing: make test runs npm ci in elk/")
    script = (
        "const f=require('@elastic/ecs/generated/ecs_flat.js').EcsFlat;"
        "console.log(JSON.stringify(Object.fromEntries(Object.entries(f).map(([k,v])=>[k,v.type]))))"
    )
    done = subprocess.run(
        ["node", "-e", script], cwd=ELK, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def schema_fields() -> dict[str, set[str]]:
    fields: dict[str, set[str]] = {}
    for definition in SCHEMA["$defs"].values():
        for name, spec in definition["properties"].items():
            kinds = spec.get("type", "string")
            kinds = [kinds] if isinstance(kinds, str) else kinds
            fields.setdefault(name, set()).update(kind for kind in kinds if kind != "null")
    return fields


def known(field: str, ecs: dict[str, str]) -> bool:
    """A field of the schema or ECS, or an ECS object holding some (`agent`, `ecs`)."""
    names = set(schema_fields()) | set(ecs) | {"tags"}
    return field in names or any(name.startswith(field + ".") for name in ecs)


def mapping_fields(properties: dict, prefix: str = "") -> dict[str, str]:
    found = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            found.update(mapping_fields(spec["properties"], path + "."))
        else:
            found[path] = spec["type"]
    return found


def test_the_index_template_maps_only_known_fields_with_compatible_types(ecs):
    template = json.loads((ELK / "elasticsearch" / "component-template-mappings.json").read_text())
    mapped = mapping_fields(template["template"]["mappings"]["properties"])
    ours = schema_fields()
    for field, es_type in mapped.items():
        assert known(field, ecs), f"{field} is in neither the schema nor ECS"
        if field in ecs and ecs[field] not in {"match_only_text", "wildcard"}:
            assert es_type == ecs[field] or field in ours, f"{field}: {es_type} vs ECS {ecs[field]}"
        for kind in ours.get(field, ()):
            assert es_type in COMPATIBLE[kind], f"{field}: a JSON {kind} stored as {es_type}"
    # Every field a line can carry is mapped (or it would not be searchable).
    assert set(ours) - set(mapped) <= {"socket"}, set(ours) - set(mapped)
    index = json.loads((ELK / "elasticsearch" / "index-template.json").read_text())
    assert index["index_patterns"] == ["logs-modelgate-*"] and "data_stream" in index
    assert index["composed_of"] == ["modelgate-logs-settings", "modelgate-logs-mappings"]
    settings = json.loads((ELK / "elasticsearch" / "component-template-settings.json").read_text())
    assert settings["template"]["settings"]["index.lifecycle.name"] == "modelgate-logs"
    ilm = json.loads((ELK / "elasticsearch" / "ilm-policy.json").read_text())
    assert set(ilm["policy"]["phases"]) == {"hot", "warm", "delete"}


def _selectors(node) -> list[list[str]]:  # type: ignore[no-untyped-def]
    found = []
    if isinstance(node, LsclSelector):
        found.append(node.names)
    elif isinstance(node, list | tuple):
        for item in node:
            found += _selectors(item)
    elif hasattr(node, "__dict__"):
        for value in vars(node).values():
            found += _selectors(value)
    return found


def test_the_logstash_pipeline_parses_and_reads_only_known_fields(ecs):
    text = (ELK / "logstash" / "pipeline" / "modelgate.conf").read_text()
    blocks = parse_lscl(text)
    assert [block.name for block in blocks] == ["input", "filter", "output"]
    assert any(isinstance(node, LsclConditions) for node in blocks[1].content)
    fields = {".".join(names) for names in _selectors(blocks)}
    fields |= {
        ".".join(re.findall(r"\[([^\]]+)\]", ref))
        for ref in re.findall(r'"((?:\[[^\]"]+\])+)"', text)
    }
    assert "service.name" in fields and "event.duration" in fields
    for field in fields:
        assert known(field, ecs), f"the pipeline uses {field}"
    output = next(block for block in blocks if block.name == "output")
    assert isinstance(output.content[0], LsclBlock) and output.content[0].name == "elasticsearch"
    assert 'data_stream_dataset => "modelgate"' in text and '"${MODELGATE_ENV}"' in text
    settings = yaml.safe_load((ELK / "logstash" / "config" / "logstash.yml").read_text())
    assert settings["queue.type"] == "persisted" and settings["dead_letter_queue.enable"] is True


KQL_FIELD = re.compile(r"([A-Za-z_@][A-Za-z0-9_.@]*)\s*(?::|>=|<=|>|<)")


def test_kibana_objects_reference_each_other_and_known_fields(ecs):
    objects = [
        json.loads(line)
        for line in (ELK / "kibana" / "saved-objects.ndjson").read_text().splitlines()
    ]
    by_id = {(item["type"], item["id"]): item for item in objects}
    assert len(by_id) == len(objects)
    kinds = [item["type"] for item in objects]
    assert kinds.count("index-pattern") == 1 and kinds.count("search") == 3
    assert kinds.count("dashboard") == 1 and kinds.count("visualization") >= 6
    titles = {item["attributes"]["title"] for item in objects}
    assert {"modelgate: errors", "modelgate: auth failures", "modelgate overview"} <= titles
    assert any(title.startswith("modelgate: one trace") for title in titles)
    used: set[str] = set()
    for item in objects:
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in by_id, (item["id"], reference)
        attributes = item["attributes"]
        source = json.loads(
            attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}")
        )
        used |= set(KQL_FIELD.findall(source.get("query", {}).get("query", "")))
        used |= set(attributes.get("columns", []))
        if "visState" in attributes:
            for agg in json.loads(attributes["visState"])["aggs"]:
                if "field" in agg["params"]:
                    used.add(agg["params"]["field"])
        if item["type"] == "dashboard":
            panels = json.loads(attributes["panelsJSON"])
            names = {reference["name"] for reference in item["references"]}
            assert {panel["panelRefName"] for panel in panels} == names
    assert {"http.response.status_code", "event.duration", "http.route", "user.id", "token.id",
            "inference.model", "inference.batch_size", "trace.id"} <= used  # fmt: skip
    for field in used:
        assert known(field, ecs), f"a Kibana object uses {field}"


def test_filebeat_reads_both_logs_as_ndjson_into_logstash():
    config = yaml.safe_load((ELK / "filebeat" / "filebeat.yml").read_text())
    inputs = config["filebeat.inputs"]
    assert {item["type"] for item in inputs} == {"filestream"}
    assert {item["id"] for item in inputs} == {"modelgate-app", "modelgate-nginx"}
    for item in inputs:
        assert item["parsers"][0]["ndjson"]["expand_keys"] is True
    assert config["output.logstash"]["hosts"] == ["logstash:5044"]


def test_the_compose_file_binds_loopback_only_pins_versions_and_has_no_default_password():
    text = (ELK / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {"setup", "es01", "kibana", "logstash", "filebeat"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":\d+\.\d+\.\d+$", image), f"{name} is not pinned: {image}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "ENCRYPTIONKEY" in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key} = {value}"
    for name in ("es01", "kibana", "logstash"):
        assert "healthcheck" in services[name], name
    assert services["es01"]["environment"]["xpack.security.enabled"] == "true"
    assert "changeme" not in text.lower()
    example = (ELK / ".env.example").read_text()
    assert re.search(r"^ELASTIC_PASSWORD=$", example, re.M), "the example must not carry a password"
