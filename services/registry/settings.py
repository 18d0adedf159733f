from pydantic import Field

from shared.identity import IdentitySettings
from shared.pii import PiiSettings
from shared.settings import CommonSettings


class RegistrySettings(CommonSettings):
    http_port: int = 8001
    # Read from their own variables (WMSJ_PII_KEY, WMSJ_OFFICE_USERS); here so that the
    # registry's configuration is in one place.
    pii: PiiSettings = Field(default_factory=PiiSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
