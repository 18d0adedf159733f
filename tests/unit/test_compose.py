"""The deployment (deploy/docker-compose.yml and services/Dockerfile), checked without Docker.

The compose file is interpolated with deploy/.env.example, as `docker compose` would do with
the operators' .env, and validated against the Compose Specification's JSON schema, vendored
as deploy/compose-spec.json. It is then checked against the code: the four services, their
settings (shared/settings.py and services/<name>/settings.py), their ports and health
endpoints, and the infrastructure they need. The one Dockerfile is parsed, with each
service's build arguments, to check that each image holds only shared/ and its own service,
so no service can import another's code.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema
import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import insecure_settings
from wmsj import deploy
from wmsj.deploy import service_user

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SCHEMA_FILE = DEPLOY / "compose-spec.json"

APP_SERVICES = ("registry", "activities", "evidence", "supervision")
# What each service's /health/ready checks (shared/service.py): broker and database, and the
# object store for evidence. The service must not start before these are healthy.
NEEDS = {
    "registry": {"rabbitmq", "mongo"},
    "activities": {"rabbitmq", "mongo"},
    "evidence": {"rabbitmq", "mongo", "s3"},
    "supervision": {"rabbitmq", "mongo"},
}
INFRA = ("rabbitmq", "mongo", "s3")
# Where each server keeps its data: these must be named volumes.
DATA_PATHS = {"rabbitmq": "/var/lib/rabbitmq", "mongo": "/data/db", "s3": "/data"}
# What an image may contain besides its own services/<name>/.
COMMON_SOURCES = {"requirements.lock", "pyproject.toml", "shared", "services/__init__.py"}
DOCKERFILE = ROOT / "services" / "Dockerfile"
SECRET_NAME = re.compile(r"PASSWORD|PASS$|SECRET|_KEY$")
SECRETS_SCRIPT = DEPLOY / "make-secrets.sh"
# What a service may read beside its own secrets (named <service>_...): the API keys.
COMMON_SECRETS = {"api_keys"}
# Settings that hold a secret: passed only as WMSJ_<NAME>_FILE, never as a value.
SECRET_SETTINGS = {
    "WMSJ_API_KEYS",
    "WMSJ_PII_KEY",
    "WMSJ_AMQP_URL",
    "WMSJ_MONGO_URL",
    "WMSJ_S3_ACCESS_KEY",
    "WMSJ_S3_SECRET_KEY",
}


# ------------------------------------------------------------------ interpolation helper


class InterpolationError(ValueError):
    """What `docker compose` reports for a missing required variable or a bad template."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $$ (a literal $), $VAR, ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+replacement}, ${VAR+replacement};
    defaults and messages may themselves contain variables."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2 : end], env))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            raise InterpolationError(f"invalid template at {text[i:]!r}: use $$ for a literal $")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _substitute(expression: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(expression)
    if not match:
        raise InterpolationError(f"invalid variable name in ${{{expression}}}")
    name, rest = match.group(), expression[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(f"invalid operator in ${{{expression}}}")
    argument = rest[len(operator) :]
    # With ":", an empty value counts as unset.
    usable = bool(value) if operator.startswith(":") else value is not None
    match operator.lstrip(":"):
        case "-":
            return (value or "") if usable else interpolate(argument, env)
        case "?":
            if not usable:
                raise InterpolationError(
                    f"required variable {name} is missing a value: {interpolate(argument, env)}"
                )
            return value or ""
        case _:  # "+"
            return interpolate(argument, env) if usable else ""


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value of a loaded YAML document (keys are left alone)."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def strings(node: Any) -> Iterator[str]:
    """Every string value of a loaded YAML document: what compose interpolates."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def referenced_variables(node: Any) -> set[str]:
    """Every variable a compose document refers to, in any branch of any expression."""
    names: set[str] = set()
    for text in strings(node):
        text = text.replace("$$", "")
        names |= set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    return names


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file as `docker compose` reads it: KEY=VALUE lines, # comments."""
    env: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        assert sep and _NAME.fullmatch(key.strip()), f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            assert " #" not in value, f"{path.name}:{number}: quote a value that contains ' #'"
        env[key.strip()] = value
    return env


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("$A/x", {"A": "1"}, "1/x"),
        ("${A}", {}, ""),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:?need A}", {"A": "v"}, "v"),
        ("${A?need A}", {"A": ""}, ""),
        ("${A:+on}", {"A": "v"}, "on"),
        ("${A:+on}", {"A": ""}, ""),
        ("${A+on}", {"A": ""}, "on"),
        ("x${A:-${B:-b}}y", {}, "xby"),
        ("$$A and $${A}", {"A": "1"}, "$A and ${A}"),
        ("a:${A}@h/?q=1&r=2", {"A": "p"}, "a:p@h/?q=1&r=2"),
    ],
)
def test_interpolation_helper(template: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(template, env) == expected


@pytest.mark.parametrize(
    ("template", "env"),
    [("${A:?need A}", {}), ("${A:?need A}", {"A": ""}), ("${A?need A}", {}), ("${A", {}), ("cost $5", {})],
)
def test_interpolation_helper_refuses(template: str, env: dict[str, str]) -> None:
    with pytest.raises(InterpolationError):
        interpolate(template, env)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def raw_compose(compose_text: str) -> dict[str, Any]:
    document = yaml.safe_load(compose_text)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


def write_secrets(env: Mapping[str, str], directory: Path) -> Path:
    """deploy/secrets/ as `bash make-secrets.sh` writes it from an .env with these values."""
    directory.mkdir(parents=True, exist_ok=True)
    env_file = directory / "env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()), encoding="utf-8")
    out = directory / "secrets"
    subprocess.run(
        ["bash", str(SECRETS_SCRIPT), str(env_file), str(out)],
        check=True,
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # only what the .env file says
    )
    return out


def with_secrets(document: dict[str, Any], secrets: Path) -> dict[str, Any]:
    """The compose document with every WMSJ_<NAME>_FILE=/run/secrets/<name> also read into
    WMSJ_<NAME>, as shared/settings.py does in the container: the environment a service's
    settings see."""
    services = {}
    for name, service in document["services"].items():
        env = environment(service)
        mounted = set(service.get("secrets") or [])
        for key, value in list(env.items()):
            if key.startswith("WMSJ_") and key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in mounted, f"{name}: {key} names a secret it is not given"
                env[key.removesuffix("_FILE")] = (secrets / secret).read_text(encoding="utf-8")
        services[name] = {**service, "environment": env} if "environment" in service else service
    return {**document, "services": services}


@pytest.fixture(scope="module")
def example_secrets(example_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_secrets(example_env, tmp_path_factory.mktemp("example-secrets"))


@pytest.fixture(scope="module")
def compose(
    raw_compose: dict[str, Any], example_env: dict[str, str], example_secrets: Path
) -> dict[str, Any]:
    """The compose file as `docker compose` sees it with .env = .env.example and the secret
    files make-secrets.sh writes from it, each service's secrets read as its settings do."""
    return with_secrets(interpolate_tree(raw_compose, example_env), example_secrets)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


# ------------------------------------------------------------------ the schema and the file


def schema_validator(schema: dict[str, Any]) -> type[jsonschema.protocols.Validator]:
    # The spec writes "https://json-schema.org/draft-07/schema" (no "#"), which jsonschema's
    # lookup by $schema does not recognise: pick the draft by name.
    if "draft-07" in schema["$schema"]:
        return jsonschema.Draft7Validator
    if "2019-09" in schema["$schema"]:
        return jsonschema.Draft201909Validator
    raise AssertionError(f"unexpected $schema {schema['$schema']}")


def test_vendored_schema_is_the_compose_specification(schema: dict[str, Any]) -> None:
    assert schema["title"] == "Compose Specification"
    schema_validator(schema).check_schema(schema)
    assert {"service", "healthcheck", "config"} <= schema["definitions"].keys()


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = schema_validator(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_every_variable_is_documented_in_env_example(
    raw_compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    script = SECRETS_SCRIPT.read_text(encoding="utf-8")
    referenced = referenced_variables(raw_compose) | set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", script))
    assert referenced, "the compose file takes nothing from .env?"
    assert not referenced - example_env.keys(), "missing from deploy/.env.example"
    assert not example_env.keys() - referenced, (
        "in deploy/.env.example but not used (compose, make-secrets.sh)"
    )


def test_secrets_come_only_from_env_and_are_required(
    compose_text: str, raw_compose: dict[str, Any], example_env: dict[str, str], tmp_path: Path
) -> None:
    script = SECRETS_SCRIPT.read_text(encoding="utf-8")
    in_script = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", script))
    secrets = {name for name in referenced_variables(raw_compose) | in_script if SECRET_NAME.search(name)}
    assert {
        "RABBITMQ_PASSWORD",
        "MONGO_ROOT_PASSWORD",
        "MONGO_REPLICA_SET_KEY",
        "S3_EVIDENCE_SECRET_KEY",
        "S3_OPERATOR_SECRET_KEY",
        "WMSJ_PII_KEY",
        *(f"RABBITMQ_{name.upper()}_PASSWORD" for name in APP_SERVICES),
        *(f"MONGO_{name.upper()}_PASSWORD" for name in APP_SERVICES),
    } <= secrets
    for name in secrets:
        # ${NAME:?message} everywhere: no default, so a forgotten secret stops `compose up`
        # or make-secrets.sh.
        for text in (compose_text, script):
            for suffix in re.findall(r"\$\{" + name + r"([^A-Za-z0-9_][^}]*)?\}", text):
                assert suffix.startswith(":?"), f"${{{name}{suffix}}}: a secret must be ${{{name}:?...}}"
        without = {k: v for k, v in example_env.items() if k != name}
        if name in in_script:
            with pytest.raises(subprocess.CalledProcessError):
                write_secrets(without, tmp_path / name)
        else:
            with pytest.raises(InterpolationError, match=name):
                interpolate_tree(raw_compose, without)
        # The placeholder must not have been pasted into the files.
        assert example_env[name] not in compose_text and example_env[name] not in script
    interpolation = r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}"
    for config in (raw_compose.get("configs") or {}).values():
        for key, value in re.findall(r'"(accessKey|secretKey)":\s*"([^"]*)"', config.get("content", "")):
            assert re.fullmatch(interpolation, value), f"{key} in a config must come from .env"


def test_no_secret_is_passed_as_an_environment_value(
    raw_compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    """Every secret reaches a container as a file (WMSJ_<NAME>_FILE=/run/secrets/<name>, or the
    image's own _FILE variable), never in its environment, where `docker inspect` shows it."""
    declared = raw_compose["secrets"]
    for name, secret in declared.items():
        assert secret == {"file": f"./secrets/{name}"}, f"secret {name}: a file under deploy/secrets/"
    interpolated = interpolate_tree(raw_compose, example_env)
    values = {v for k, v in example_env.items() if SECRET_NAME.search(k) or k == "WMSJ_API_KEYS"}
    for service_name, service in interpolated["services"].items():
        mounted = set(service.get("secrets") or [])
        assert mounted <= declared.keys(), f"{service_name}: undeclared secrets"
        for key, value in environment(service).items():
            where = f"{service_name}: {key}"
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in mounted, f"{where}: not its secret"
                continue
            assert key not in SECRET_SETTINGS, f"{where} must be {key}_FILE"
            assert not SECRET_NAME.search(key), f"{where}: a secret as an environment value"
            assert not any(secret in value for secret in values), f"{where} holds a secret from .env"
            if "://" in value:
                assert "@" not in value.split("://", 1)[1].split("/", 1)[0], f"{where}: credentials in a URL"
    for name in APP_SERVICES:
        env = environment(raw_compose["services"][name])
        for key in {"WMSJ_API_KEYS", "WMSJ_AMQP_URL", "WMSJ_MONGO_URL"}:
            assert env.get(f"{key}_FILE", "").startswith("/run/secrets/"), f"{name}: {key}_FILE"
    assert environment(raw_compose["services"]["registry"])["WMSJ_PII_KEY_FILE"]
    mongo = environment(raw_compose["services"]["mongo"])
    assert mongo["MONGO_INITDB_ROOT_PASSWORD_FILE"] == "/run/secrets/mongo_root_password"


def test_each_service_gets_only_its_own_secrets(raw_compose: dict[str, Any]) -> None:
    declared = set(raw_compose["secrets"])
    owned = {name: {s for s in declared if s.startswith(f"{name}_")} for name in APP_SERVICES}
    for name in APP_SERVICES:
        mounted = set(raw_compose["services"][name].get("secrets") or [])
        others = set().union(*(owned[other] for other in APP_SERVICES if other != name))
        assert not mounted & others, f"{name} receives another service's secrets: {sorted(mounted & others)}"
        assert mounted <= owned[name] | COMMON_SECRETS, f"{name}: {sorted(mounted - owned[name])}"
        assert owned[name] | COMMON_SECRETS <= mounted, f"{name} lacks its own secrets"
    assert {"registry_pii_key"} == {s for s in declared if "pii" in s}
    # The servers: mongo only its own and the database URLs (it makes the services' users
    # from them), never a broker URL, an API or PII key or an S3 key.
    for server in ("rabbitmq", "mongo", "s3", "prometheus", "grafana"):
        mounted = set(raw_compose["services"][server].get("secrets") or [])
        allowed = {
            "mongo": {
                "mongo_root_password",
                "mongo_replica_set_key",
                *(f"{n}_mongo_url" for n in APP_SERVICES),
            },
            "prometheus": {"metrics_key"},
            "grafana": {"grafana_admin_password"},
        }.get(server, set())
        assert mounted <= allowed, f"{server}: {sorted(mounted - allowed)}"
    used = set().union(*(set(svc.get("secrets") or []) for svc in raw_compose["services"].values()))
    assert used == declared, f"declared but given to nobody: {sorted(declared - used)}"


def test_make_secrets_writes_every_declared_file_but_the_metrics_key(
    raw_compose: dict[str, Any], example_secrets: Path
) -> None:
    written = {path.name for path in example_secrets.iterdir()}
    assert written == set(raw_compose["secrets"]) - {"metrics_key"}
    # Only the deploying user enters the directory; the containers' users read the files
    # (bind mounts keep the host's owner and mode).
    assert example_secrets.stat().st_mode & 0o777 == 0o700
    for path in example_secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name
        assert not path.read_text(encoding="utf-8").endswith("\n")


def test_env_example_placeholders_are_usable(example_env: dict[str, str]) -> None:
    # mongod accepts a keyFile of 6 to 1024 base64 characters only.
    assert re.fullmatch(r"[A-Za-z0-9+/=]{6,1024}", example_env["MONGO_REPLICA_SET_KEY"])
    for name, value in example_env.items():
        if SECRET_NAME.search(name) or name.endswith("_USER"):
            # They go into URLs and a JSON file unescaped.
            assert re.fullmatch(r"[A-Za-z0-9._~+=-]+", value), f"{name}: use URL-safe characters"


# ------------------------------------------------------------------ the four services


def test_all_services_and_servers_are_defined(compose: dict[str, Any]) -> None:
    assert set(APP_SERVICES) | set(INFRA) <= compose["services"].keys()
    # The collector's and Jaeger's images are distroless (no shell, no wget): nothing to run a
    # health check with, and nothing depends on them being healthy.
    unchecked = {"otel-collector", "jaeger"}
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
        assert name in unchecked or service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_builds_from_the_one_dockerfile_with_its_name(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    port = environment(compose["services"][name])["WMSJ_HTTP_PORT"]
    assert build["args"] == {"SERVICE": name, "HTTP_PORT": port}


def _settings_classes(service: str) -> list[type[BaseSettings]]:
    """The settings classes of shared/settings.py and of services/<service>/settings.py."""
    modules = [
        importlib.import_module("shared.settings"),
        importlib.import_module("shared.auth"),
        importlib.import_module("shared.identity"),
    ]
    try:
        modules.append(importlib.import_module(f"services.{service}.settings"))
    except ModuleNotFoundError as error:
        if error.name != f"services.{service}.settings":
            raise
    classes: list[type[BaseSettings]] = []
    for module in modules:
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseSettings)
                and obj is not BaseSettings
                and obj not in classes
            ):
                classes.append(obj)
    return classes


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix") or ""
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= _env_names(field.annotation)  # a nested settings object reads its own prefix
            continue
        alias = field.validation_alias or field.alias
        names.add((alias if isinstance(alias, str) else f"{prefix}{field_name}").upper())
    return names


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("WMSJ_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_environment_is_read_by_its_settings(
    compose: dict[str, Any], name: str, clean_environ: pytest.MonkeyPatch
) -> None:
    env = environment(compose["services"][name])
    classes = _settings_classes(name)
    known = set().union(*(_env_names(cls) for cls in classes))
    wmsj = {key for key in env if key.upper().startswith("WMSJ_") and not key.upper().endswith("_FILE")}
    assert {"WMSJ_AMQP_URL", "WMSJ_MONGO_URL", "WMSJ_HTTP_HOST", "WMSJ_HTTP_PORT"} <= wmsj
    assert not wmsj - known, f"{name}: not a settings field (shared/settings.py, services/{name}/settings.py)"
    # And the values are what the settings accept (ints, booleans, ...).
    for key, value in env.items():
        clean_environ.setenv(key, value)
    loaded = {cls: cls() for cls in classes}
    service_classes = [cls for cls in classes if cls.__module__ == f"services.{name}.settings"]
    for cls in service_classes or [c for c in classes if "http_port" in c.model_fields]:
        settings: Any = loaded[cls]
        assert settings.http_host == "0.0.0.0"
        assert settings.http_port == int(env["WMSJ_HTTP_PORT"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_health_and_ports_agree(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = int(environment(service)["WMSJ_HTTP_PORT"])
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    found = re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/health/ready\b", " ".join(test))
    assert found and {int(p) for p in found} == {port}, (
        f"{name}: healthcheck must GET /health/ready on {port}"
    )
    published = [str(p).rsplit(":", 1) for p in service.get("ports", [])]
    assert all(len(str(p).split(":")) == 3 for p in service.get("ports", [])), "publish with a host address"
    assert any(int(target) == port for _, target in published), f"{name}: port {port} not published"
    # The image says the same: ENV, EXPOSE and HEALTHCHECK.
    dockerfile = Dockerfile(DOCKERFILE, {"SERVICE": name, "HTTP_PORT": str(port)})
    assert dockerfile.env["WMSJ_HTTP_PORT"] == str(port)
    assert dockerfile.single("EXPOSE") == str(port)
    # And the code's own default, where the service declares one.
    for cls in _settings_classes(name):
        if cls.__module__ == f"services.{name}.settings" and "http_port" in cls.model_fields:
            assert cls.model_fields["http_port"].default == port


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_starts_after_healthy_servers(compose: dict[str, Any], name: str) -> None:
    depends_on = compose["services"][name].get("depends_on")
    assert isinstance(depends_on, dict), "depends_on needs conditions"
    for server in NEEDS[name]:
        assert depends_on.get(server, {}).get("condition") == "service_healthy", f"{name} → {server}"


def test_supervision_is_published_for_the_office(compose: dict[str, Any]) -> None:
    assert "127.0.0.1:8004:8004" in compose["services"]["supervision"]["ports"]


# ------------------------------------------------------------------ the servers


def _conftest_image(repository: str) -> str | None:
    """The tag the test suite runs (tests/conftest.py), when it names one."""
    conftest = ROOT / "tests" / "conftest.py"
    if not conftest.is_file():
        return None
    match = re.search(r'"(' + re.escape(repository) + r':[^"]+)"', conftest.read_text(encoding="utf-8"))
    return match.group(1) if match else None


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("rabbitmq", r"rabbitmq:4\.\d+\.\d+-management(-alpine)?(@sha256:[0-9a-f]{64})?"),
        ("mongo", r"mongo:8\.\d+\.\d+(@sha256:[0-9a-f]{64})?"),
        ("s3", r"chrislusf/seaweedfs:4\.\d+(\.\d+)*(@sha256:[0-9a-f]{64})?"),
    ],
)
def test_server_images(compose: dict[str, Any], name: str, image: str) -> None:
    actual = compose["services"][name]["image"]
    assert re.fullmatch(image, actual), actual
    tested = _conftest_image(actual.rpartition(":")[0])
    if tested is not None:
        assert actual == tested, "deploy what the tests run (tests/conftest.py)"


@pytest.mark.parametrize(("name", "path"), DATA_PATHS.items())
def test_server_data_is_on_named_volumes(compose: dict[str, Any], name: str, path: str) -> None:
    mounts = [str(v).split(":") for v in compose["services"][name].get("volumes", [])]
    sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == path]
    assert sources and sources[0] in (compose.get("volumes") or {}), f"{name}: {path} on a named volume"


def test_rabbitmq(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    assert " ".join(rabbitmq["healthcheck"]["test"]).startswith("CMD rabbitmq-diagnostics")
    assert re.search(
        r"\b(ping|check_port_connectivity|check_running)\b", " ".join(rabbitmq["healthcheck"]["test"])
    )
    assert rabbitmq.get("hostname"), "a fixed hostname keeps RabbitMQ's data across re-creation"
    users = {user["name"]: user["password"] for user in broker_definitions(compose)["users"]}
    for name in APP_SERVICES:
        url = urlsplit(environment(compose["services"][name])["WMSJ_AMQP_URL"])
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)
        user, password = unquote(url.username or ""), unquote(url.password or "")
        assert user == service_user(name), f"{name} connects as its own broker user"
        assert users.get(user) == password, f"{name}: the broker's definitions must hold its user"


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


def _flag(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def test_mongo_is_an_authenticated_single_node_replica_set(compose: dict[str, Any]) -> None:
    mongo = compose["services"]["mongo"]
    command = _command(mongo)
    replica_set = _flag(command, "--replSet")
    assert replica_set, "transactions need a replica set: mongod --replSet"
    env = environment(mongo)
    assert env.get("MONGO_INITDB_ROOT_USERNAME") and env.get("MONGO_INITDB_ROOT_PASSWORD_FILE")
    keyfile = _flag(command, "--keyFile")
    assert keyfile, "a replica set with authentication needs --keyFile"
    entrypoint = " ".join(mongo.get("entrypoint") or [])
    assert keyfile in entrypoint and "chmod 400" in entrypoint and "docker-entrypoint.sh" in entrypoint
    health = " ".join(mongo["healthcheck"]["test"])
    assert re.search(r"rs\.initiate\(\{\s*_id:\s*'" + replica_set + r"'.*host:\s*'mongo:27017'", health)
    assert "isWritablePrimary" in health, "healthy only when PRIMARY"
    assert "MONGO_INITDB_ROOT_PASSWORD_FILE" in health, "the check must authenticate"
    for name in APP_SERVICES:
        url = urlsplit(environment(compose["services"][name])["WMSJ_MONGO_URL"])
        query = parse_qs(url.query)
        assert (url.scheme, url.hostname, url.port) == ("mongodb", "mongo", 27017)
        assert query.get("replicaSet") == [replica_set], f"{name}: WMSJ_MONGO_URL needs replicaSet="
        assert query.get("authSource") == ["admin"]
        user, password = unquote(url.username or ""), unquote(url.password or "")
        assert user == service_user(name), f"{name} connects to MongoDB as its own user, not root"
        assert password, f"{name}: its user's password"
    # mongo makes each service's user with the password of that service's database URL.
    script = compose["configs"]["mongo-users"]["content"]
    assert "/run/secrets/${service}_mongo_url" in script


def test_s3_gateway_and_its_credentials(compose: dict[str, Any]) -> None:
    s3 = compose["services"]["s3"]
    command = _command(s3)
    assert "mini" in command or "server" in command
    port = _flag(command, "-s3.port")
    config_path = _flag(command, "-s3.config")
    assert port and config_path
    assert _flag(command, "-s3.autoCreateBucket") == "false", (
        "the evidence bucket must be made with object lock"
    )
    assert re.search(rf"127\.0\.0\.1:{port}/(healthz|status)\b", " ".join(s3["healthcheck"]["test"]))
    mounted = {c["target"]: c["source"] for c in s3.get("configs", [])}
    assert config_path in mounted
    identities = json.loads(compose["configs"][mounted[config_path]]["content"])
    credentials = {
        (c["accessKey"], c["secretKey"])
        for identity in identities["identities"]
        for c in identity["credentials"]
    }
    evidence = environment(compose["services"]["evidence"])
    assert evidence["WMSJ_S3_ENDPOINT"] == f"s3:{port}"
    assert (evidence["WMSJ_S3_ACCESS_KEY"], evidence["WMSJ_S3_SECRET_KEY"]) in credentials
    # The evidence service's identity may act on its own two buckets and nothing else.
    buckets = {evidence["WMSJ_S3_UPLOAD_BUCKET"], evidence["WMSJ_S3_EVIDENCE_BUCKET"]}
    (own,) = [
        identity
        for identity in identities["identities"]
        if any(c["accessKey"] == evidence["WMSJ_S3_ACCESS_KEY"] for c in identity["credentials"])
    ]
    scopes = {action.partition(":")[2] for action in own["actions"]}
    assert scopes == buckets, f"evidence's S3 identity must be limited to {sorted(buckets)}: {own['actions']}"


# ------------------------------------------------------------------ the Dockerfiles


class Dockerfile:
    """Just enough of a Dockerfile parser: instructions with continuation lines joined, and
    ``${ARG}`` replaced by the build arguments given (or the ARG's default)."""

    def __init__(self, path: Path, build_args: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.build_args = dict(build_args or {})
        self.instructions: list[tuple[str, str]] = []
        current = ""
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if line.startswith("#") or (not line and not current):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            if current.strip():
                keyword, _, arguments = current.strip().partition(" ")
                if keyword.upper() == "ARG":
                    name, _, default = arguments.strip().partition("=")
                    self.build_args.setdefault(name, default)
                elif keyword.upper() not in ("RUN", "CMD", "HEALTHCHECK"):  # those see the shell's $VARs
                    arguments = re.sub(
                        r"\$\{(\w+)\}", lambda m: self.build_args.get(m.group(1), m.group(0)), arguments
                    )
                self.instructions.append((keyword.upper(), arguments.strip()))
            current = ""
        assert not current, f"{path}: ends with a continuation line"

    def all(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]

    def single(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"{self.path}: expected one {keyword}, found {found}"
        return found[0]

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
        return env

    def copy_sources(self) -> Iterator[tuple[list[str], str]]:
        """(flags, source) for every source of every COPY."""
        for arguments in self.all("COPY"):
            flags: list[str] = []
            rest = arguments
            while rest.startswith("--"):
                flag, _, rest = rest.partition(" ")
                flags.append(flag)
                rest = rest.lstrip()
            paths = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            assert len(paths) >= 2, f"{self.path}: COPY {arguments}"
            for source in paths[:-1]:
                yield flags, source


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list)
    return value


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dockerfile_copies_only_shared_and_its_own_service(name: str) -> None:
    dockerfile = Dockerfile(DOCKERFILE, {"SERVICE": name, "HTTP_PORT": "8000"})
    assert not dockerfile.all("ADD"), "use COPY"
    allowed = COMMON_SOURCES | {f"services/{name}"}
    copied: set[str] = set()
    for flags, source in dockerfile.copy_sources():
        assert not any(flag.startswith("--from") for flag in flags), "no multi-stage copies from elsewhere"
        assert not re.search(r"[*?\[$]", source), f"{source}: no wildcards, no unknown variables"
        normalized = os.path.normpath(source)
        assert normalized in allowed, f"the {name} image copies {source}: only {sorted(allowed)}"
        copied.add(normalized)
    assert copied == allowed, f"missing from the image: {sorted(allowed - copied)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dockerfile_runs_the_service_as_a_non_root_user(name: str) -> None:
    dockerfile = Dockerfile(DOCKERFILE, {"SERVICE": name, "HTTP_PORT": "8000"})
    # A pinned base image (a full version; a digest may be added with --build-arg PYTHON_IMAGE).
    (base,) = dockerfile.all("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    runs = dockerfile.all("RUN")
    assert any("--require-hashes -r requirements.lock" in run for run in runs), (
        "install the locked dependencies"
    )
    assert any("pip install --no-cache-dir --no-deps ." in run for run in runs), (
        "the project without re-resolving"
    )
    user = dockerfile.all("USER")
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert dockerfile.env["WMSJ_SERVICE"] == name
    assert _exec_form(dockerfile.single("CMD")) == ["sh", "-c", 'exec python -m "services.${WMSJ_SERVICE}"']
    assert dockerfile.env["WMSJ_HTTP_HOST"] == "0.0.0.0"
    health = dockerfile.single("HEALTHCHECK")
    assert "/health/ready" in health and "urllib" in health and "curl" not in health


def test_the_lock_file_pins_every_dependency_with_hashes() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.MULTILINE))
    normal = {re.sub(r"[-_.]+", "-", name).lower() for name in pinned}
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in normal, (
            f"{name} is not in requirements.lock: run pip-compile"
        )
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.strip()):
        if block.startswith("#") or "==" not in block.split("\n")[0]:
            continue
        assert "--hash=sha256:" in block, f"{block.splitlines()[0]}: no hash"
    assert "file://" not in lock and "/opt/" not in lock, "the lock names a local index"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_containers_are_hardened(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["ulimits"]["nofile"]["soft"] >= 4096
    assert service["stop_grace_period"]
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


@pytest.mark.parametrize("name", INFRA)
def test_servers_are_bounded_and_stop_cleanly(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["cap_drop"] == ["ALL"]
    assert service["ulimits"]["nofile"]["soft"] >= 32000, "RabbitMQ and mongod want many open files"
    seconds = int(str(service["stop_grace_period"]).rstrip("s"))
    assert seconds >= 60, "time for a clean shutdown (docker's default is 10 s)"
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


def test_dockerignore_keeps_the_rest_out_of_the_build_context() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "tests", "bench", "docs", "var", "deploy", "**/.env"} <= patterns


# ------------------------------------------------------------------ least privilege (issue 10)


def broker_definitions(compose: Mapping[str, Any]) -> dict[str, Any]:
    definitions = json.loads(compose["configs"]["rabbitmq-users"]["content"])
    assert isinstance(definitions, dict)
    return definitions


def test_every_service_gets_the_keys_office_users_and_production_mode_from_one_place(
    raw_compose: dict[str, Any],
) -> None:
    shared = {"WMSJ_API_KEYS_FILE", "WMSJ_OFFICE_USERS", "WMSJ_MODE"}
    seen: dict[str, set[str]] = {key: set() for key in shared}
    for name in APP_SERVICES:
        env = environment(raw_compose["services"][name])
        assert shared <= env.keys(), f"{name} lacks {sorted(shared - env.keys())}"
        for key in shared:
            seen[key].add(env[key])
    assert all(len(values) == 1 for values in seen.values()), f"one value for every service: {seen}"
    assert seen["WMSJ_MODE"] == {"production"}
    assert seen["WMSJ_OFFICE_USERS"] == {"${RABBITMQ_USER:?set RABBITMQ_USER in .env}"}


def test_no_two_services_share_a_broker_database_or_s3_identity(compose: dict[str, Any]) -> None:
    amqp, mongo, s3 = {}, {}, {}
    for name in APP_SERVICES:
        env = environment(compose["services"][name])
        amqp[name] = urlsplit(env["WMSJ_AMQP_URL"]).username
        mongo[name] = urlsplit(env["WMSJ_MONGO_URL"]).username
        if "WMSJ_S3_ACCESS_KEY" in env:
            s3[name] = env["WMSJ_S3_ACCESS_KEY"]
    for kind, users in (("broker", amqp), ("MongoDB", mongo), ("S3", s3)):
        assert len(set(users.values())) == len(users), f"services share a {kind} identity: {users}"
    admin = environment(compose["services"]["mongo"])["MONGO_INITDB_ROOT_USERNAME"]
    assert admin not in mongo.values()
    office = environment(compose["services"]["registry"])["WMSJ_OFFICE_USERS"]
    assert office not in amqp.values(), "no service connects as the office/administrator"
    identities = json.loads(compose["configs"]["s3-identities"]["content"])["identities"]
    unscoped = {
        c["accessKey"]
        for identity in identities
        if any(":" not in action for action in identity["actions"])
        for c in identity["credentials"]
    }
    assert not unscoped & set(s3.values()), "a service holds the operators' unscoped S3 identity"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_broker_user_may_do_exactly_what_the_service_needs(
    compose: dict[str, Any], name: str
) -> None:
    definitions = broker_definitions(compose)
    user = service_user(name)
    allowed = deploy.permissions(name)
    (granted,) = [p for p in definitions["permissions"] if p["user"] == user]
    assert (granted["vhost"], granted["configure"], granted["write"], granted["read"]) == (
        "/",
        allowed.configure,
        allowed.write,
        allowed.read,
    ), "regenerate with python -m wmsj.deploy --users"
    (topic,) = [p for p in definitions["topic_permissions"] if p["user"] == user]
    assert (topic["exchange"], topic["write"], topic["read"]) == ("wmsj.events", allowed.events_write, "^$")
    # What the regular expressions allow, spelled out: its own queues, nobody else's.
    own = deploy.own_queues(name)
    assert own and all(re.fullmatch(granted["read"], queue) for queue in own)
    others = [q for other in APP_SERVICES if other != name for q in deploy.own_queues(other)]
    for queue in [*others, "wmsj.dead-letters", "office.scores", "wmsj.replies.township-1"]:
        for kind in ("configure", "write", "read"):
            assert not re.fullmatch(granted[kind], queue), f"{user} may {kind} {queue}"
    for exchange in ("wmsj.ingress", "wmsj.dlx", "wmsj.ingress.unrouted"):
        assert not re.fullmatch(granted["configure"], exchange)
    assert not re.fullmatch(granted["write"], "wmsj.ingress"), "services do not publish on the ingress"
    users = {u["name"]: u for u in definitions["users"]}
    assert users[user]["tags"] == [], "a service's user has no management rights"


def test_broker_loads_its_definitions_and_caps_message_size(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    mounted = {c["source"]: c["target"] for c in rabbitmq["configs"]}
    conf = dict(
        (key.strip(), value.strip())
        for key, _, value in (
            line.partition("=") for line in compose["configs"]["rabbitmq-conf"]["content"].splitlines()
        )
        if key.strip() and not key.strip().startswith("#")
    )
    assert mounted["rabbitmq-conf"].startswith("/etc/rabbitmq/conf.d/")
    directory = conf["definitions.local.path"]
    assert conf["definitions.import_backend"] == "local_filesystem"
    assert {mounted["rabbitmq-users"], mounted["rabbitmq-topology"]} <= {
        f"{directory}/{Path(t).name}" for t in mounted.values()
    }
    # Users (and their vhost) before the topology: files are imported in name order.
    assert Path(mounted["rabbitmq-users"]).name < Path(mounted["rabbitmq-topology"]).name
    assert (DEPLOY / compose["configs"]["rabbitmq-topology"]["file"]).resolve() == deploy.TOPOLOGY_FILE
    # The services' own cap is 1 MiB by default; the broker's is above it so that a message
    # between the two is refused with a reason, not by closing the sender's channel.
    assert 1024 * 1024 < int(conf["max_message_size"]) <= 16 * 1024 * 1024
    assert "RABBITMQ_DEFAULT_USER" not in environment(rabbitmq), "users come from the definitions"


def test_broker_topology_file_is_generated_from_the_code() -> None:
    assert deploy.main(["--check"]) == 0, "run python -m wmsj.deploy"
    topology = json.loads(deploy.TOPOLOGY_FILE.read_text(encoding="utf-8"))
    (policy,) = [p for p in topology["policies"] if re.fullmatch(p["pattern"], "wmsj.dead-letters")]
    assert policy["definition"]["message-ttl"] > 0 and policy["definition"]["max-length"] > 0


def test_mongo_users_may_read_and_write_their_own_database_only(compose: dict[str, Any]) -> None:
    script = compose["configs"]["mongo-users"]["content"]
    rows = re.findall(r'\["([^"]+)",\s*password\("(\w+)"\),\s*"([^"]+)"\]', script)
    assert {user: (password, db) for user, password, db in rows} == {
        service_user(name): (name, name) for name in APP_SERVICES
    }
    assert re.search(r'roles:\s*\[\{\s*role:\s*"readWrite",\s*db:\s*prefix \+ service\s*\}\]', script)
    assert "AnyDatabase" not in script
    mongo_env = environment(compose["services"]["mongo"])
    for name in APP_SERVICES:
        assert mongo_env["WMSJ_DB_PREFIX"] == environment(compose["services"][name])["WMSJ_DB_PREFIX"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_refuse_to_start_with_the_env_example_placeholders(
    compose: dict[str, Any], name: str
) -> None:
    problems = insecure_settings(environment(compose["services"][name]), pii=name == "registry")
    assert any("WMSJ_API_KEYS" in p for p in problems), problems
    assert any("WMSJ_AMQP_URL" in p for p in problems) and any("WMSJ_MONGO_URL" in p for p in problems)
    if name == "registry":
        assert any("WMSJ_PII_KEY" in p for p in problems)
    if name == "evidence":
        assert any("WMSJ_S3_" in p for p in problems)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_start_with_real_secrets(
    raw_compose: dict[str, Any], example_env: dict[str, str], name: str, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    real = {
        key: (Fernet.generate_key().decode() if key == "WMSJ_PII_KEY" else os.urandom(12).hex())
        if re.search("change-?me", value, re.IGNORECASE)
        else value
        for key, value in example_env.items()
    }
    real["WMSJ_API_KEYS"] = json.dumps({os.urandom(16).hex(): "office"})
    document = with_secrets(interpolate_tree(raw_compose, real), write_secrets(real, tmp_path))
    service = document["services"][name]
    registry = name == "registry"  # the one service that encrypts personal data
    assert insecure_settings(environment(service), pii=registry) == []


def test_development_secrets_are_refused_outside_development_mode() -> None:
    from shared.auth import DEV_OFFICE_KEY
    from shared.pii import DEV_PII_KEY

    production = {
        "WMSJ_MODE": "production",
        "WMSJ_API_KEYS": json.dumps({"k" * 32: "office"}),
        "WMSJ_AMQP_URL": "amqp://u:p4ss@rabbitmq:5672/",
        "WMSJ_MONGO_URL": "mongodb://u:p4ss@mongo:27017/",
    }
    assert insecure_settings(production, pii=False) == []
    assert insecure_settings(production), "a service that encrypts personal data needs its own PII key"
    assert insecure_settings({**production, "WMSJ_MODE": "development", "WMSJ_PII_KEY": DEV_PII_KEY}) == []
    assert insecure_settings({**production, "WMSJ_API_KEYS": json.dumps({DEV_OFFICE_KEY: "office"})})
    assert insecure_settings({k: v for k, v in production.items() if k != "WMSJ_API_KEYS"})
    assert insecure_settings({**production, "WMSJ_PII_KEY": DEV_PII_KEY}, pii=False)
    assert insecure_settings({**production, "WMSJ_PII_KEY": "change-me-pii-key"}, pii=False)
    assert insecure_settings({**production, "WMSJ_AMQP_URL": "amqp://guest:guest@rabbitmq:5672/"})
    assert insecure_settings({**production, "WMSJ_S3_SECRET_KEY": "minioadmin"})


# ------------------------------------------------------------------ observability (issue 13)

OBSERVABILITY = DEPLOY / "observability"


def _metric_names() -> set[str]:
    """The names /metrics serves for the domain (shared/metrics.py), with their suffixes."""
    from prometheus_client.parser import text_string_to_metric_families

    from shared.metrics import ServiceMetrics

    metrics = ServiceMetrics("x")
    metrics.events.labels("x", "t", "w", "handled").inc()
    for histogram in (metrics.handler_seconds.labels("x", "t"), metrics.delivery_seconds.labels("x")):
        histogram.observe(1)
    metrics.analysis_seconds.labels("x").observe(1)
    metrics.store_errors.labels("x", "mongo").inc()
    metrics.backlog.labels("x", "outbox").set(1)
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_observability_runs_behind_its_profile_only(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana", "otel-collector", "jaeger"):
        assert compose["services"][name]["profiles"] == ["observability"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", compose["services"][name]["image"]), "pin a version"
    for name in (*APP_SERVICES, *INFRA):
        assert "profiles" not in compose["services"][name], f"{name} must run without a profile"


def test_prometheus_scrapes_every_service_and_loads_the_alerts(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        if job["job_name"] == "wmsj"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {
        f"{name}:{environment(compose['services'][name])['WMSJ_HTTP_PORT']}" for name in APP_SERVICES
    }
    mounted = {c["target"] for c in compose["services"]["prometheus"]["configs"]}
    assert set(config["rule_files"]) <= mounted


def test_alert_rules_and_dashboard_use_metrics_that_exist() -> None:
    alerts = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text(encoding="utf-8"))
    rules = {rule["alert"]: rule["expr"] for group in alerts["groups"] for rule in group["rules"]}
    assert {"WmsjQueueGrowing", "WmsjOutboxStuck", "WmsjDeadLetters", "WmsjTownshipSilent"} <= rules.keys()
    dashboard = json.loads(
        (OBSERVABILITY / "grafana" / "dashboards" / "wmsj.json").read_text(encoding="utf-8")
    )
    expressions = [*rules.values(), *(t["expr"] for p in dashboard["panels"] for t in p["targets"])]
    known = _metric_names()
    for expression in expressions:
        for name in re.findall(r"\b(wmsj_[a-z_]+)\b", expression):
            assert name in known, f"{name} is not served by shared/metrics.py"
    datasources = yaml.safe_load((OBSERVABILITY / "grafana" / "provisioning" / "datasources.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids


def test_traces_go_through_the_collector_to_jaeger(raw_compose: dict[str, Any]) -> None:
    collector = yaml.safe_load((OBSERVABILITY / "otel-collector.yml").read_text(encoding="utf-8"))
    pipeline = collector["service"]["pipelines"]["traces"]
    assert (
        pipeline["receivers"] == ["otlp"]
        and "4318" in collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    )
    (exporter,) = pipeline["exporters"]
    assert collector["exporters"][exporter]["endpoint"].startswith("jaeger:")
    for name in APP_SERVICES:
        # Off unless the operator sets it (the profile's collector may not be running).
        assert environment(raw_compose["services"][name])["WMSJ_OTLP_ENDPOINT"] == "${WMSJ_OTLP_ENDPOINT:-}"


def test_setup_installs_the_dev_lock_which_agrees_with_the_image_lock() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements-dev.lock" in setup
    pins = {}
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text(encoding="utf-8")
        pins[name] = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE))
    image, dev = pins["requirements.lock"], pins["requirements-dev.lock"]
    assert {k: v for k, v in dev.items() if k in image} == image, "the two locks disagree: regenerate both"
