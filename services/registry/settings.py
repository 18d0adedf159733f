from pydantic import Field

from shared.identity import IdentitySettings
from shared.pii import PiiSettings
from shared.settings import HoldSettings


class RegistrySettings(HoldSettings):  # hold_s, hold_sweep_interval_s: units and volunteers held early
    http_port: int = 8001
    # Read from their own variables (WMSJ_PII_KEY, WMSJ_OFFICE_USERS); here so that the
    # registry's configuration is in one place.
    pii: PiiSettings = Field(default_factory=PiiSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
