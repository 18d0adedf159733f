from pathlib import Path

from shared.settings import CommonSettings

RULES_DIR = Path(__file__).with_name("rules")


class SupervisionSettings(CommonSettings):
    http_port: int = 8004
    # The rule set scores are made with: services/supervision/rules/<name>.toml.
    rules: str = "notice-2026"
