"""The deployment manifests agree with their schemas and with the code they deploy.

Checked offline (no Docker engine, no cluster):

- every Kubernetes object of the kustomize base and of each overlay validates against the
  Kubernetes OpenAPI schemas (kubernetes-validate, strict: an unknown field fails); the custom
  resources (Strimzi KafkaTopic, KEDA ScaledObject and TriggerAuthentication), for which it has
  no schemas, against the fields their operators need;
- the compose file validates against the Compose Specification's JSON schema (as vendored by
  check-jsonschema);
- every topic of `shared.contracts.topics`, and its dead-letter topic, has a KafkaTopic and a
  line in compose's topic-creation job;
- every environment variable given to a service (compose, Kubernetes env and envFrom, the
  image) is one its settings class reads, so a misspelt name fails here instead of being
  silently ignored by pydantic-settings;
- probes, ports, scrape annotations and security contexts match what the services serve;
- each consumer has a ScaledObject on its own consumer group and topics, bounded by the
  topics' partitions.

Overlays are rendered by the small kustomize in this module (resources, namespace, labels,
images, strategic-merge patches); a test checks that it renders exactly the same objects as
`kubectl kustomize` (`make tools` installs kubectl; under CI=true a missing one fails the test).
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.receiving.app import load_lot_numbering
from shared.contracts.topics import TOPICS, all_topic_names

try:
    import jsonschema  # type: ignore[import-untyped]
    import kubernetes_validate  # type: ignore[import-untyped]
except ImportError as missing:  # a broken dev install must fail the run, never skip it
    raise ImportError(
        f"{missing.name} is missing: the manifest tests need the dev extras "
        "(kubernetes-validate, check-jsonschema): pip install -e '.[dev]'"
    ) from missing

Manifest = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "deploy" / "compose" / "docker-compose.yaml"
COMPOSE_INIT_SQL = REPO / "deploy" / "compose" / "postgres" / "create-databases.sql"
K8S = REPO / "deploy" / "k8s"
TREES = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}
SERVICES = ("receiving", "inventory", "fulfillment", "recall")

# The oldest Kubernetes minor the manifests promise to work on, and the newest one
# kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

# Variables of the interpreter and the venv, set by the image: not lottrace settings.
INTERPRETER_ENV = frozenset({"PATH", "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})

# Settings holding a file path: the file must be mounted where the setting points.
FILE_SETTINGS = (
    "RECEIVING_LOT_CODE_RULES_FILE",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
)

# Settings holding a credential: only ever from a Secret.
CREDENTIAL = re.compile(r"(DATABASE_URL|PASSWORD)$")

# The consumer starts from the earliest offset when its group has none
# (shared/runtime/consumer.py); KEDA must count lag the same way.
CONSUMER_OFFSET_RESET = "earliest"


# ---------------------------------------------------------------------- the services


@dataclass(frozen=True)
class Service:
    """What a service's code says about how it must be deployed."""

    name: str
    env_names: frozenset[str]
    port_env_names: tuple[str, ...]
    default_port: int
    group_id: str | None
    topics: tuple[str, ...]
    routes: frozenset[str]

    def port(self, env: dict[str, Any]) -> int:
        """The port the service listens on given `env` (the first alias set wins)."""
        for name in self.port_env_names:
            if env.get(name) is not None:
                return int(env[name])
        return self.default_port


def accepted_env_names(settings: type[BaseSettings]) -> frozenset[str]:
    """Every environment variable a pydantic-settings class reads (upper case).

    A field reads `<env_prefix><field name>` unless it has a validation alias (AliasChoices:
    each choice; pydantic-settings then ignores the prefix). A nested settings class reads
    its own variables (KafkaSettings under `kafka`: KAFKA_*).
    """
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= accepted_env_names(annotation)
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif field.alias:
            names.add(field.alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


@functools.cache
def service(name: str) -> Service:
    module = importlib.import_module(f"services.{name}.app")
    settings: type[BaseSettings] = module.Settings
    app = module.create_app(settings())  # builds the wiring; nothing connects
    consumer = app.state.runtime.consumer
    port_field = settings.model_fields["http_port"]
    alias = port_field.validation_alias
    port_env_names = (
        tuple(choice.upper() for choice in alias.choices if isinstance(choice, str))
        if isinstance(alias, AliasChoices)
        else ("HTTP_PORT",)
    )
    return Service(
        name=name,
        env_names=accepted_env_names(settings),
        port_env_names=port_env_names,
        default_port=int(port_field.default),
        group_id=consumer.group_id if consumer is not None else None,
        topics=tuple(consumer.topics) if consumer is not None else (),
        # The OpenAPI paths: FastAPI may include routers lazily, so app.routes can hide them.
        routes=frozenset(app.openapi()["paths"]),
    )


CONSUMERS = tuple(name for name in SERVICES if service(name).group_id is not None)
NON_CONSUMERS = tuple(name for name in SERVICES if service(name).group_id is None)


# ---------------------------------------------------------------------- a small kustomize

CUSTOM_GROUPS = frozenset({"kafka.strimzi.io", "keda.sh"})
KUSTOMIZATION_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
)
# Strategic-merge keys of the built-in kinds' lists (as in the Kubernetes API's
# x-kubernetes-patch-merge-key). Lists of custom resources have none: a patch replaces them.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


def load_documents(path: Path) -> list[Manifest]:
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def api_group(manifest: Manifest) -> str:
    api_version = str(manifest["apiVersion"])
    group, slash, _ = api_version.partition("/")
    return group if slash else ""


def is_custom(manifest: Manifest) -> bool:
    return api_group(manifest) in CUSTOM_GROUPS


def identity(manifest: Manifest) -> tuple[str, str, str, str]:
    metadata = manifest["metadata"]
    return (
        manifest["apiVersion"],
        manifest["kind"],
        metadata.get("namespace", ""),
        metadata["name"],
    )


def strategic_merge(target: Manifest, patch: Manifest, *, custom: bool) -> None:
    """Apply a strategic-merge patch in place: maps merge, `null` deletes, keyed lists of
    built-in kinds merge by key (new items first, as kustomize does), other lists are replaced."""
    for key, value in patch.items():
        assert not key.startswith("$"), f"patch directive {key} is not supported here"
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value, custom=custom)
        elif (
            isinstance(value, list)
            and isinstance(current, list)
            and not custom
            and key in MERGE_KEYS
        ):
            merge_key = MERGE_KEYS[key]
            by_key = {item[merge_key]: item for item in current}
            added = []
            for item in value:
                if item[merge_key] in by_key:
                    strategic_merge(by_key[item[merge_key]], item, custom=custom)
                else:
                    added.append(copy.deepcopy(item))
            target[key] = added + current
        else:
            target[key] = copy.deepcopy(value)


def matches(manifest: Manifest, target: dict[str, str]) -> bool:
    unsupported = set(target) - {"kind", "name", "group", "version"}
    assert not unsupported, f"patch target selectors {sorted(unsupported)} are not supported here"
    version = str(manifest["apiVersion"]).rsplit("/", 1)[-1]
    name = str(manifest["metadata"]["name"])
    return (
        target.get("kind", manifest["kind"]) == manifest["kind"]
        and re.fullmatch(target.get("name", ".*"), name) is not None
        and target.get("group", api_group(manifest)) == api_group(manifest)
        and target.get("version", version) == version
    )


def apply_patch(objects: list[Manifest], directory: Path, entry: dict[str, Any]) -> None:
    assert set(entry) <= {"path", "target"}, f"{directory}: only `path` (+ `target`) patches"
    documents = load_documents(directory / entry["path"])
    assert len(documents) == 1, f"{entry['path']}: one strategic-merge patch per file"
    patch = documents[0]
    assert isinstance(patch, dict), f"{entry['path']}: JSON 6902 patches are not supported here"
    target = entry.get("target") or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
    body = {key: value for key, value in patch.items() if key not in ("apiVersion", "kind")}
    metadata = {
        key: value
        for key, value in body.pop("metadata", {}).items()
        if key not in ("name", "namespace")
    }
    if metadata:
        body["metadata"] = metadata
    patched = [manifest for manifest in objects if matches(manifest, target)]
    assert patched, f"{directory / entry['path']} patches no object ({target})"
    for manifest in patched:
        strategic_merge(manifest, body, custom=is_custom(manifest))


def pod_spec(manifest: Manifest) -> Manifest | None:
    template = manifest.get("spec", {}).get("template")
    return template.get("spec") if isinstance(template, dict) else None


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` -> (name, tag, digest); a registry port is not a tag."""
    reference, _, digest = reference.partition("@")
    name, tag = reference, None
    if ":" in reference.rsplit("/", 1)[-1]:
        name, tag = reference.rsplit(":", 1)
    return name, tag, digest or None


def set_image(manifest: Manifest, image: dict[str, str]) -> None:
    spec = pod_spec(manifest)
    if spec is None:
        return
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        name, tag, digest = split_image(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        tag = image.get("newTag", tag)
        digest = image.get("digest", digest)
        container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def render(directory: Path) -> list[Manifest]:
    """What `kustomize build directory` gives, for the features these manifests use."""
    with (directory / "kustomization.yaml").open(encoding="utf-8") as stream:
        kustomization: dict[str, Any] = yaml.safe_load(stream)
    unsupported = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unsupported, (
        f"{directory}: this test's renderer does not handle {sorted(unsupported)}; keep "
        f"kustomizations to {sorted(KUSTOMIZATION_FIELDS)} (or teach the renderer)"
    )
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects.extend(render(path) if path.is_dir() else load_documents(path))
    for patch in kustomization.get("patches", []):
        apply_patch(objects, directory, patch)
    namespace = kustomization.get("namespace")
    for manifest in objects:
        if namespace:
            manifest["metadata"]["namespace"] = namespace
        for labels in kustomization.get("labels", []):
            assert set(labels) == {"pairs"}, "only plain `labels: - pairs:` are supported here"
            manifest["metadata"].setdefault("labels", {}).update(labels["pairs"])
        for image in kustomization.get("images", []):
            set_image(manifest, image)
    return objects


@functools.cache
def rendered(tree: str) -> tuple[Manifest, ...]:
    objects = render(TREES[tree])
    identities = [identity(manifest) for manifest in objects]
    assert len(identities) == len(set(identities)), f"{tree}: an object is defined twice"
    return tuple(objects)


def of_kind(tree: str, kind: str) -> list[Manifest]:
    return [manifest for manifest in rendered(tree) if manifest["kind"] == kind]


def named(tree: str, kind: str, name: str) -> Manifest:
    found = [manifest for manifest in of_kind(tree, kind) if manifest["metadata"]["name"] == name]
    assert len(found) == 1, f"{tree}: expected one {kind} {name}, found {len(found)}"
    return found[0]


# Where `make tools` (.ci/install-tools) puts kubectl, searched after PATH.
TOOLS_BIN = REPO / ".venv" / "tools" / "bin"


def kustomize_command() -> list[str] | None:
    for path in (None, str(TOOLS_BIN)):
        if kubectl := shutil.which("kubectl", path=path):
            return [kubectl, "kustomize"]
        if kustomize := shutil.which("kustomize", path=path):
            return [kustomize, "build"]
    return None


# ---------------------------------------------------------------------- deployments


def app_container(deployment: Manifest) -> Manifest:
    spec = pod_spec(deployment)
    assert spec is not None
    containers: list[Manifest] = spec["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per pod"
    return containers[0]


def deployment_of(tree: str, name: str) -> Manifest:
    """The Deployment whose container runs `services.<name>` (the image runs `python -m`)."""
    found = [
        deployment
        for deployment in of_kind(tree, "Deployment")
        if app_container(deployment).get("args") == [f"services.{name}"]
    ]
    assert len(found) == 1, f"{tree}: expected one Deployment running services.{name}"
    assert found[0]["metadata"]["name"] == name
    return found[0]


def service_pod(tree: str, name: str) -> tuple[Manifest, Manifest]:
    """The pod spec of the Deployment running `services.<name>`, and its one container."""
    deployment = deployment_of(tree, name)
    spec = pod_spec(deployment)
    assert spec is not None
    return spec, app_container(deployment)


@dataclass(frozen=True)
class AppDeployment:
    """The Deployment running `services.<name>` in a tree, its one container, and the port the
    service listens on there."""

    deployment: Manifest
    container: Manifest
    port: int


def app_deployment(tree: str, name: str) -> AppDeployment:
    deployment = deployment_of(tree, name)
    container = app_container(deployment)
    return AppDeployment(deployment, container, service(name).port(container_env(tree, container)))


def container_env(tree: str, container: Manifest) -> dict[str, Any]:
    """The container's environment: ConfigMap keys from envFrom, then `env` (values from a
    Secret or ConfigMap reference are None)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        assert set(source) <= {"configMapRef", "prefix"}, (
            "envFrom only from ConfigMaps: a Secret's keys cannot be checked against the settings"
        )
        config_map = named(tree, "ConfigMap", source["configMapRef"]["name"])
        for key, value in config_map.get("data", {}).items():
            env[source.get("prefix", "") + key] = value
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value")
    return env


def env_sources(container: Manifest) -> dict[str, Manifest]:
    return {
        variable["name"]: variable.get("valueFrom", {}) for variable in container.get("env", [])
    }


def resolve_port(container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    by_name = {item["name"]: item["containerPort"] for item in container.get("ports", [])}
    assert port in by_name, f"no container port named {port}"
    return int(by_name[port])


def autoscaler_bounds(tree: str, name: str) -> tuple[int, int]:
    for scaled in of_kind(tree, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == name:
            return scaled["spec"].get("minReplicaCount", 0), scaled["spec"]["maxReplicaCount"]
    for hpa in of_kind(tree, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    replicas = deployment_of(tree, name)["spec"].get("replicas", 1)
    return replicas, replicas


QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<unit>m|k|M|G|Ki|Mi|Gi)?$")
UNITS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
}


def quantity(value: str | int) -> float:
    found = QUANTITY.match(str(value))
    assert found, f"unreadable quantity {value!r}"
    return float(found["number"]) * UNITS[found["unit"]]


def topic_partitions(tree: str) -> dict[str, int]:
    return {
        topic["spec"].get("topicName", topic["metadata"]["name"]): topic["spec"]["partitions"]
        for topic in of_kind(tree, "KafkaTopic")
    }


# ---------------------------------------------------------------------- custom resources

_NAME: Manifest = {
    "type": "string",
    "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    "maxLength": 253,
}
_STRINGS: Manifest = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA: Manifest = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": {"type": "string"},
        "labels": _STRINGS,
        "annotations": _STRINGS,
    },
}
_COUNT: Manifest = {"type": "integer", "minimum": 0}


def _closed(properties: Manifest, *required: str, **extra: Any) -> Manifest:
    """An object that admits only `properties` (where the CRD would silently prune a misspelt
    field), with the `required` ones; `extra` adds other keywords."""
    schema: Manifest = {"type": "object", "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra, "properties": properties}


_REF = _closed(
    {"parameter": {"type": "string"}, "name": _NAME, "key": {"type": "string"}},
    "parameter",
    "name",
    "key",
)


def _resource(api_version: str, kind: str, spec: dict[str, Any], **metadata: Any) -> Manifest:
    return _closed(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {**_METADATA, **metadata},
            "spec": spec,
        },
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    )


# What the operators read (from the Strimzi and KEDA CRDs), plus this project's rules
# (partitions and replicas always explicit). `additionalProperties: false` where the CRDs would
# silently prune a misspelt field.
CUSTOM_RESOURCE_SCHEMAS: dict[tuple[str, str], Manifest] = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): _resource(
        "kafka.strimzi.io/v1beta2",
        "KafkaTopic",
        _closed(
            {
                "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "required": ["retention.ms", "min.insync.replicas"],
                    "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
                },
            },
            "topicName",
            "partitions",
            "replicas",
            "config",
        ),
        required=["name", "labels"],
        properties={
            **_METADATA["properties"],
            "labels": {**_STRINGS, "required": ["strimzi.io/cluster"]},
        },
    ),
    ("keda.sh/v1alpha1", "ScaledObject"): _resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        _closed(
            {
                "scaleTargetRef": _closed(
                    {
                        "name": _NAME,
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                    "name",
                ),
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": _COUNT,
                "initialCooldownPeriod": _COUNT,
                "idleReplicaCount": _COUNT,
                "minReplicaCount": _COUNT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                },
                "advanced": _closed(
                    {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": _closed(
                            {"name": {"type": "string"}, "behavior": {"type": "object"}}
                        ),
                        "scalingModifiers": {"type": "object"},
                    }
                ),
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            # KEDA's CRD: a map of strings; a bare number is rejected.
                            "metadata": _STRINGS,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": _closed(
                                {
                                    "name": _NAME,
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "name",
                            ),
                        },
                        "type",
                        "metadata",
                    ),
                },
            },
            "scaleTargetRef",
            "triggers",
            "maxReplicaCount",
        ),
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _resource(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        _closed(
            {
                "secretTargetRef": {"type": "array", "items": _REF},
                "configMapTargetRef": {"type": "array", "items": _REF},
                "env": {
                    "type": "array",
                    "items": _closed(
                        {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "containerName": {"type": "string"},
                        },
                        "parameter",
                        "name",
                    ),
                },
                "podIdentity": {"type": "object", "required": ["provider"]},
            },
            minProperties=1,
        ),
    ),
}


def custom_resource_problems(manifest: Manifest) -> list[str]:
    schema = CUSTOM_RESOURCE_SCHEMAS.get((manifest["apiVersion"], manifest["kind"]))
    if schema is None:
        return [f"no structural schema for {manifest['apiVersion']} {manifest['kind']}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(manifest), key=str)
    ]


def kubernetes_problems(manifest: Manifest, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return [f"{path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [str(error.message)]
    return []


# ---------------------------------------------------------------------- compose


@functools.cache
def compose() -> Manifest:
    with COMPOSE_FILE.open(encoding="utf-8") as stream:
        document: Manifest = yaml.safe_load(stream)  # merges the `<<: *anchor` keys
    return document


@functools.cache
def compose_schema() -> Manifest:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: Manifest = json.loads(vendored.joinpath("compose-spec.json").read_text("utf-8"))
    return schema


def compose_problems(document: Manifest) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        compose_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=str)
    ]


def compose_service(name: str) -> Manifest:
    services: Manifest = compose()["services"]
    assert name in services, f"compose has no service {name}"
    return dict(services[name])


CREATE_TOPIC = re.compile(
    r"^\s*create\s+(?P<topic>\S+)\s+(?P<partitions>\d+)\s+(?P<retention>\d+)\s*$", re.MULTILINE
)


def compose_topics() -> dict[str, tuple[int, int]]:
    """topic -> (partitions, retention.ms) from the topic-creation job's `create` lines."""
    job = compose_service("kafka-topics")
    script = "\n".join(job["command"])
    assert "kafka-topics.sh" in script
    assert "--partitions" in script
    assert "--if-not-exists" in script, "re-running the job must not fail"
    return {
        found["topic"]: (int(found["partitions"]), int(found["retention"]))
        for found in CREATE_TOPIC.finditer(script)
    }


# ---------------------------------------------------------------------- the image


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, then the instructions of each stage (each starting with FROM)."""
    global_args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if not stages:
            if keyword == "ARG":
                name, _, default = arguments.partition("=")
                global_args[name] = default
            continue
        stages[-1].append((keyword, arguments))
    return global_args, stages


def env_assignments(arguments: str) -> dict[str, str]:
    pairs = [word.partition("=") for word in shlex.split(arguments)]
    return {name: value for name, _, value in pairs}


def runtime_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[1][-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in runtime_stage():
        if keyword == "ENV":
            env.update(env_assignments(arguments))
    return env


def image_uid() -> int:
    users = [arguments for keyword, arguments in runtime_stage() if keyword == "USER"]
    assert users, "the runtime stage sets no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric, or runAsNonRoot cannot verify it"
    return int(uid)


def imported_modules(directory: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(directory.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module.split(".")[0]


# ====================================================================== tests: the validators


def test_kubernetes_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(deployment_of("base", "inventory"))
    container = app_container(deployment)
    container["livenesProbe"] = container.pop("livenessProbe")

    assert kubernetes_problems(deployment, KUBERNETES_VERSIONS[0])


def test_custom_resource_validation_rejects_a_number_in_trigger_metadata() -> None:
    scaled = copy.deepcopy(named("base", "ScaledObject", "inventory"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1000

    assert custom_resource_problems(scaled)


def test_compose_validation_rejects_an_unknown_dependency_condition() -> None:
    document = copy.deepcopy(compose())
    document["services"]["inventory"]["depends_on"]["postgres"]["condition"] = "service_up"

    assert compose_problems(document)


def test_settings_reject_a_misspelt_variable_and_accept_the_documented_ones() -> None:
    names = service("inventory").env_names

    assert "INVENTORY_DATABSE_URL" not in names
    assert {
        "INVENTORY_DATABASE_URL",
        "DATABASE_URL",
        "INVENTORY_HTTP_PORT",
        "HTTP_PORT",
        "HTTP_HOST",
        "LOG_FORMAT",
        "CONSUMER_MAX_RECORDS",
        "INVENTORY_EXPIRY_SWEEP_SECONDS",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_ENABLE_IDEMPOTENCE",
    } <= names


# ====================================================================== tests: Kubernetes


@pytest.mark.parametrize("tree", TREES)
def test_the_built_in_renderer_renders_what_kustomize_renders(tree: str) -> None:
    command = kustomize_command()
    if command is None:
        missing = "neither kubectl nor kustomize is installed (make tools installs kubectl)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI must compare the built-in renderer with kustomize")
        pytest.skip(missing)
    output = subprocess.run(
        [*command, str(TREES[tree])], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    theirs = {identity(manifest): manifest for manifest in yaml.safe_load_all(output) if manifest}
    ours = {identity(manifest): manifest for manifest in rendered(tree)}

    assert sorted(ours) == sorted(theirs)
    for key, manifest in ours.items():
        assert manifest == theirs[key], f"{tree}: {key} renders differently"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("tree", TREES)
def test_every_kubernetes_object_validates_against_the_kubernetes_schemas(
    tree: str, version: str
) -> None:
    problems = [
        f"{identity(manifest)} {problem}"
        for manifest in rendered(tree)
        if not is_custom(manifest)
        for problem in kubernetes_problems(manifest, version)
    ]

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("tree", TREES)
def test_every_custom_resource_has_the_fields_its_operator_reads(tree: str) -> None:
    problems = [
        f"{identity(manifest)} {problem}"
        for manifest in rendered(tree)
        if is_custom(manifest)
        for problem in custom_resource_problems(manifest)
    ]

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("tree", TREES)
def test_every_topic_and_its_dead_letter_topic_has_a_kafka_topic(tree: str) -> None:
    assert sorted(topic_partitions(tree)) == sorted(all_topic_names())


@pytest.mark.parametrize("tree", TREES)
def test_kafka_topics_keep_dead_letters_longer_and_replicate_writes(tree: str) -> None:
    topics = {topic["spec"]["topicName"]: topic["spec"] for topic in of_kind(tree, "KafkaTopic")}
    for spec in TOPICS:
        source, dead_letters = topics[spec.name], topics[spec.dlq]
        assert int(dead_letters["config"]["retention.ms"]) > int(source["config"]["retention.ms"])
    for name, topic in topics.items():
        min_insync = int(topic["config"]["min.insync.replicas"])
        assert min_insync <= topic["replicas"], name
        if tree != "dev":  # dev runs one broker
            assert topic["replicas"] >= 3, name
            assert min_insync < topic["replicas"], f"{name}: one broker down would stop writes"


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_every_variable_given_to_a_service_is_one_its_settings_read(tree: str, name: str) -> None:
    container = app_container(deployment_of(tree, name))
    unknown = sorted(set(container_env(tree, container)) - service(name).env_names)

    assert not unknown, f"{tree}/{name}: settings read no such variable: {unknown}"


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_every_service_is_told_where_its_database_and_kafka_are(tree: str, name: str) -> None:
    env = container_env(tree, app_container(deployment_of(tree, name)))

    assert {f"{name.upper()}_DATABASE_URL", "DATABASE_URL"} & set(env)
    assert env.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_credentials_come_only_from_secret_references(tree: str, name: str) -> None:
    container = app_container(deployment_of(tree, name))
    sources = env_sources(container)
    credentials = [
        variable for variable in container_env(tree, container) if CREDENTIAL.search(variable)
    ]

    assert credentials
    for variable in credentials:
        reference = sources.get(variable, {}).get("secretKeyRef")
        assert reference, f"{tree}/{name}: {variable} must come from a Secret"
        assert reference.get("name")
        assert reference.get("key")


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_config_maps_and_volumes_referenced_by_a_service_exist(tree: str, name: str) -> None:
    spec, container = service_pod(tree, name)
    for source in env_sources(container).values():
        if "configMapKeyRef" in source:
            reference = source["configMapKeyRef"]
            assert reference["key"] in named(tree, "ConfigMap", reference["name"]).get("data", {})
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in volumes, f"{tree}/{name}: no volume {mount['name']}"
    for volume in volumes.values():
        if "configMap" in volume:
            named(tree, "ConfigMap", volume["configMap"]["name"])


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_files_named_by_settings_are_mounted_there(tree: str, name: str) -> None:
    spec, container = service_pod(tree, name)
    env = container_env(tree, container)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for variable in FILE_SETTINGS:
        path = env.get(variable)
        if not path:
            continue
        mounts = [
            mount
            for mount in container.get("volumeMounts", [])
            if path.startswith(mount["mountPath"].rstrip("/") + "/")
        ]
        assert mounts, f"{tree}/{name}: nothing is mounted at {variable}={path}"
        mount = max(mounts, key=lambda mount: len(mount["mountPath"]))
        relative = path[len(mount["mountPath"].rstrip("/")) + 1 :]
        volume = volumes[mount["name"]]
        source = volume.get("configMap") or volume.get("secret") or {}
        items = {item["path"]: item["key"] for item in source.get("items", [])}
        assert not items or relative in items, f"{tree}/{name}: {path} is not among {items}"
        if "configMap" in volume:
            data = named(tree, "ConfigMap", volume["configMap"]["name"]).get("data", {})
            assert items.get(relative, relative) in data, f"{tree}/{name}: {path} is missing"


@pytest.mark.parametrize("tree", TREES)
def test_the_lot_code_rules_given_to_receiving_parse(tree: str, tmp_path: Path) -> None:
    deployment = deployment_of(tree, "receiving")
    container = app_container(deployment)
    spec = pod_spec(deployment)
    assert spec is not None
    path = container_env(tree, container)["RECEIVING_LOT_CODE_RULES_FILE"]
    mount = next(
        mount for mount in container["volumeMounts"] if path.startswith(mount["mountPath"])
    )
    volume = next(volume for volume in spec["volumes"] if volume["name"] == mount["name"])
    data = named(tree, "ConfigMap", volume["configMap"]["name"])["data"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(data[Path(path).name], encoding="utf-8")

    numbering = load_lot_numbering(rules)

    assert numbering.default is not None


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_probes_check_healthz_and_readyz_on_the_service_port(tree: str, name: str) -> None:
    app = app_deployment(tree, name)

    assert {"/healthz", "/readyz", "/metrics"} <= service(name).routes
    assert app.port in [item["containerPort"] for item in app.container["ports"]]
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        check = app.container[probe]["httpGet"]
        assert check["path"] == path, f"{tree}/{name}: {probe}"
        assert resolve_port(app.container, check["port"]) == app.port, f"{tree}/{name}: {probe}"
    annotations = app.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(app.port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_the_service_object_reaches_the_pods_on_the_service_port(tree: str, name: str) -> None:
    app = app_deployment(tree, name)
    pod_labels = app.deployment["spec"]["template"]["metadata"]["labels"]
    selected = named(tree, "Service", name)

    assert selected["spec"]["selector"].items() <= pod_labels.items()
    assert app.deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    target_ports = [item["targetPort"] for item in selected["spec"]["ports"]]
    assert [resolve_port(app.container, target) for target in target_ports] == [app.port]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_containers_run_as_the_image_user_never_root(tree: str, name: str) -> None:
    spec, container = service_pod(tree, name)
    pod_context = spec.get("securityContext", {})
    context = container.get("securityContext", {})

    def effective(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    assert "command" not in container, "the image's ENTRYPOINT (python -m) must stay"
    assert effective("runAsNonRoot") is True
    assert effective("runAsUser") == image_uid()
    assert effective("seccompProfile") == {"type": "RuntimeDefault"}
    assert context.get("allowPrivilegeEscalation") is False
    assert context.get("readOnlyRootFilesystem") is True
    assert "ALL" in context.get("capabilities", {}).get("drop", [])


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_containers_request_and_limit_cpu_and_memory(tree: str, name: str) -> None:
    resources_ = app_container(deployment_of(tree, name))["resources"]
    for kind in ("cpu", "memory"):
        request = quantity(resources_["requests"][kind])
        limit = quantity(resources_["limits"][kind])
        assert 0 < request <= limit, f"{tree}/{name}: {kind}"
    # The services' target is < 200 MB RSS: a limit below that would kill them under load.
    assert quantity(resources_["limits"]["memory"]) >= 200e6


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("tree", TREES)
def test_a_disruption_budget_protects_every_service_without_blocking_drains(
    tree: str, name: str
) -> None:
    pod_labels = deployment_of(tree, name)["spec"]["template"]["metadata"]["labels"]
    budget = named(tree, "PodDisruptionBudget", name)["spec"]
    minimum, _ = autoscaler_bounds(tree, name)

    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    assert ("minAvailable" in budget) != ("maxUnavailable" in budget)
    if "minAvailable" in budget:
        assert budget["minAvailable"] < minimum, f"{tree}/{name}: no pod could ever be evicted"
    else:
        assert budget["maxUnavailable"] >= 1


@pytest.mark.parametrize("name", CONSUMERS)
@pytest.mark.parametrize("tree", TREES)
def test_each_consumer_scales_on_the_lag_of_its_own_group_and_topics(tree: str, name: str) -> None:
    consumer = service(name)
    container = app_container(deployment_of(tree, name))
    env = container_env(tree, container)
    scaled = [
        manifest
        for manifest in of_kind(tree, "ScaledObject")
        if manifest["spec"]["scaleTargetRef"]["name"] == name
    ]
    assert len(scaled) == 1, f"{tree}/{name}: expected one ScaledObject"
    spec = scaled[0]["spec"]
    triggers = spec["triggers"]
    partitions = topic_partitions(tree)
    auths = {auth["metadata"]["name"] for auth in of_kind(tree, "TriggerAuthentication")}

    assert {trigger["type"] for trigger in triggers} == {"kafka"}
    assert sorted(trigger["metadata"]["topic"] for trigger in triggers) == sorted(consumer.topics)
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == consumer.group_id
        assert metadata["offsetResetPolicy"] == CONSUMER_OFFSET_RESET
        assert int(metadata["lagThreshold"]) > 0
        if "bootstrapServersFromEnv" in metadata:
            assert env.get(metadata["bootstrapServersFromEnv"])
        else:
            assert metadata["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
        assert trigger["authenticationRef"]["name"] in auths
    # Never to zero (the service serves HTTP and relays its outbox); never more consumers
    # than partitions (the extra ones would idle).
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["maxReplicaCount"] <= min(partitions[topic] for topic in consumer.topics)


@pytest.mark.parametrize("name", NON_CONSUMERS)
@pytest.mark.parametrize("tree", TREES)
def test_a_service_that_consumes_nothing_scales_on_cpu(tree: str, name: str) -> None:
    scaled = [
        manifest
        for manifest in of_kind(tree, "ScaledObject")
        if manifest["spec"]["scaleTargetRef"]["name"] == name
    ]
    autoscalers = [
        hpa
        for hpa in of_kind(tree, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    ]

    assert not scaled
    assert len(autoscalers) == 1
    assert {metric["resource"]["name"] for metric in autoscalers[0]["spec"]["metrics"]} == {"cpu"}
    assert 1 <= autoscalers[0]["spec"]["minReplicas"] <= autoscalers[0]["spec"]["maxReplicas"]


@pytest.mark.parametrize("tree", TREES)
def test_no_deployment_sets_replicas_its_autoscaler_owns(tree: str) -> None:
    for name in SERVICES:
        assert "replicas" not in deployment_of(tree, name)["spec"], f"{tree}/{name}"


def test_production_talks_to_kafka_over_sasl_ssl_with_scram() -> None:
    config = named("prod", "ConfigMap", "lottrace-config")["data"]
    scaler = named("prod", "ConfigMap", "lottrace-kafka-scaler")["data"]

    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["KAFKA_SASL_USERNAME"] == scaler["username"]
    assert (scaler["sasl"], scaler["tls"]) == ("scram_sha512", "enable")
    assert "KAFKA_ENABLE_IDEMPOTENCE" not in config  # real Kafka: the default (true) stays


def test_development_talks_to_kafka_in_plaintext() -> None:
    config = named("dev", "ConfigMap", "lottrace-config")["data"]
    scaler = named("dev", "ConfigMap", "lottrace-kafka-scaler")["data"]

    assert config["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert (scaler["sasl"], scaler["tls"]) == ("none", "disable")


# ====================================================================== tests: compose


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    problems = compose_problems(compose())

    assert not problems, "\n".join(problems)


def test_compose_creates_every_topic_and_its_dead_letter_topic() -> None:
    topics = compose_topics()

    assert sorted(topics) == sorted(all_topic_names())
    for spec in TOPICS:
        assert topics[spec.name][0] >= 1
        assert topics[spec.dlq][1] > topics[spec.name][1], "DLQs are kept longer"


def test_compose_runs_apache_kafka_in_kraft_mode_and_pinned_images() -> None:
    kafka = compose_service("kafka")
    env = kafka["environment"]

    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    for name, definition in compose()["services"].items():
        if "build" in definition:
            continue
        _, tag, digest = split_image(definition["image"])
        assert digest or (tag and tag != "latest"), f"{name}: pin the image version"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_gives_each_service_only_variables_its_settings_read(name: str) -> None:
    unknown = sorted(set(compose_service(name)["environment"]) - service(name).env_names)

    assert not unknown, f"compose/{name}: settings read no such variable: {unknown}"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_each_service_from_the_image_by_command(name: str) -> None:
    definition = compose_service(name)
    build = definition["build"]

    assert definition["command"] == [f"services.{name}"]
    assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert definition["read_only"] is True
    assert definition["cap_drop"] == ["ALL"]


@pytest.mark.parametrize("name", SERVICES)
def test_compose_starts_each_service_after_its_topics_and_database(name: str) -> None:
    depends_on = compose_service(name)["depends_on"]

    assert depends_on["kafka-topics"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in compose_service("postgres")
    assert "healthcheck" in compose_service("kafka")


@pytest.mark.parametrize("name", SERVICES)
def test_compose_gives_each_service_its_own_database_made_at_init(name: str) -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+);", COMPOSE_INIT_SQL.read_text("utf-8")))
    env = compose_service(name)["environment"]
    url = env.get(f"{name.upper()}_DATABASE_URL") or env["DATABASE_URL"]
    database = urlsplit(url).path.lstrip("/")
    mounts = compose_service("postgres")["volumes"]

    assert database == f"lottrace_{name}"
    assert database in created
    assert any(
        COMPOSE_INIT_SQL.name in mount and "docker-entrypoint-initdb.d" in mount for mount in mounts
    )


@pytest.mark.parametrize("name", SERVICES)
def test_compose_publishes_each_service_port_and_checks_readyz_there(name: str) -> None:
    definition = compose_service(name)
    port = service(name).port(definition["environment"])
    check = " ".join(definition["healthcheck"]["test"])

    assert definition["environment"]["HTTP_HOST"] == "0.0.0.0"
    assert any(str(mapping).endswith(f":{port}:{port}") for mapping in definition["ports"])
    assert f"127.0.0.1:{port}/readyz" in check


# ====================================================================== tests: the image


def test_the_image_is_built_in_stages_and_runs_python_m_as_a_non_root_user() -> None:
    global_args, stages = dockerfile_stages()
    runtime = runtime_stage()
    base = runtime[0][1].split()[0]
    for name, default in global_args.items():
        base = base.replace(f"${{{name}}}", default)
    entrypoint = [
        json.loads(arguments) for keyword, arguments in runtime if keyword == "ENTRYPOINT"
    ]
    command = [json.loads(arguments) for keyword, arguments in runtime if keyword == "CMD"]
    runs = " ".join(arguments for keyword, arguments in runtime if keyword == "RUN")

    assert len(stages) >= 2
    assert base.startswith("python:3.11-slim")
    assert any(
        keyword == "COPY" and "--from=builder" in arguments for keyword, arguments in runtime
    )
    assert not re.search(r"\b(gcc|build-essential|apt-get install)\b", runs)
    assert image_uid() != 0
    assert entrypoint[-1] == ["python", "-m"]
    assert len(command[-1]) == 1
    assert command[-1][0] in {f"services.{name}" for name in SERVICES}


def test_the_image_sets_only_settings_that_every_service_reads() -> None:
    env = image_env()
    settings = set(env) - INTERPRETER_ENV

    assert env["HTTP_HOST"] == "0.0.0.0"
    for name in SERVICES:
        assert settings <= service(name).env_names, name


def test_the_image_leaves_out_only_packages_the_services_never_import() -> None:
    arguments = next(
        arguments
        for keyword, arguments in dockerfile_stages()[1][0]
        if keyword == "ARG" and arguments.startswith("LOCAL_ONLY_PACKAGES=")
    )
    left_out = env_assignments(arguments)["LOCAL_ONLY_PACKAGES"].split()
    modules = {package.replace("-", "_") for package in left_out}
    dependencies = (REPO / "pyproject.toml").read_text("utf-8")
    offending = [
        f"{path.relative_to(REPO)} imports {module}"
        for directory in (REPO / "services", REPO / "shared")
        for path, module in imported_modules(directory)
        if module in modules
    ]

    assert left_out
    assert all(f'"{package}==' in dependencies for package in left_out)
    assert not offending, offending
