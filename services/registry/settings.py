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
    # A unit whose parent, or a volunteer whose unit, is not registered yet is held (it may
    # only be early) this long, then refused on the sender's reply queue: long enough for any
    # re-ordering on the way, short enough for a township to act on it the same day.
    hold_s: float = 3600
    # How often held statements are looked at for having outstayed the hold.
    hold_sweep_interval_s: float = 60
