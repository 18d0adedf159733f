from pathlib import Path

from shared.settings import CommonSettings

RULES_DIR = Path(__file__).with_name("rules")


class SupervisionSettings(CommonSettings):
    http_port: int = 8004
    # The rule set scores are made with: services/supervision/rules/<name>.toml.
    rules: str = "notice-2026"
    # The evidence service's HTTP API as the office's browser reaches it: the dashboard asks
    # it for view links of the evidence photos (with the office's key) straight from the
    # page, so supervision itself never calls another service. Empty: photos are not shown.
    evidence_url: str = "http://127.0.0.1:8003"
    # Likewise the activities service's API: the page lists the open 四单 orders near
    # escalation on a township's to-do from it (supervision keeps no orders). Empty: not shown.
    activities_url: str = "http://127.0.0.1:8002"
    # Likewise the registry's: the office's townships (list, add, rotate, revoke) are managed
    # from the page through its /townships route. Empty: not shown.
    registry_url: str = "http://127.0.0.1:8001"
    # The office's broker user, as which the dashboard publishes the office's actions (the key
    # project list, evidence verdicts) on the ingress exchange. Empty: the service's own
    # amqp_url (on a development broker its user, guest, is the office's).
    office_amqp_url: str = ""
    # The rescorer: how many marked unit-years one transaction rescores, and how often it
    # looks for marks when no handler woke it (marks left by a crash are found this way).
    rescore_batch: int = 100
    rescore_interval_s: float = 1.0
