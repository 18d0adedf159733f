from pydantic import Field

from shared.identity import IdentitySettings
from shared.onboarding import ManagementSettings
from shared.pii import PiiSettings
from shared.settings import HoldSettings


class RegistrySettings(HoldSettings):  # hold_s, hold_sweep_interval_s: units and volunteers held early
    http_port: int = 8001
    # Read from their own variables (WMSJ_PII_KEY, WMSJ_OFFICE_USERS); here so that the
    # registry's configuration is in one place.
    pii: PiiSettings = Field(default_factory=PiiSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    # The office's /townships route manages township users through the broker's management
    # API, as a broker administrator (WMSJ_RABBITMQ_MANAGEMENT_*; default: the AMQP URL's user).
    management: ManagementSettings = Field(default_factory=ManagementSettings)
    # The broker's address as township systems reach it, for the AMQP URL handed to them.
    public_amqp_url: str | None = None
    # Web pages allowed to call this API from a browser (CORS), comma-separated: the
    # supervision dashboard, where the office manages townships (the /townships route).
    dashboard_origins: str = "http://127.0.0.1:8004,http://localhost:8004"
