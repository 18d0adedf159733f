"""The domain modules are pure: importing one pulls in no I/O library (broker, database, object
store). Each is imported in a fresh interpreter, so nothing imported by another test counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = ("faststream", "pymongo", "aio_pika", "aiormq", "minio")
SERVICE_DOMAINS = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in [*ROOT.glob("services/*/domain.py"), *ROOT.glob("services/*/domain/*.py")]
)
DOMAIN_MODULES = [*SERVICE_DOMAINS, "shared.hold_rules", "shared.events"]


def test_every_service_has_a_domain_module() -> None:
    assert {m.split(".")[1] for m in DOMAIN_MODULES if m.startswith("services.")} == {
        "registry",
        "activities",
        "evidence",
        "supervision",
    }


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_a_domain_module_imports_no_io_library(module: str) -> None:
    probe = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {IO_LIBRARIES!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
