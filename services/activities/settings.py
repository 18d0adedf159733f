from shared.settings import HoldSettings


class ActivitiesSettings(HoldSettings):  # hold_s, hold_sweep_interval_s: events held early
    http_port: int = 8002
    # 四单: an order not accepted within this time escalates to the level above.
    order_accept_hours: float = 48
    # The early warning is issued from this day of the month on (earlier, most units have
    # simply not got round to it yet), and re-issued whenever its list of units changes.
    warning_from_day: int = 20
    # How often the timers (escalation, early warning) look.
    timer_interval_s: float = 60
    # Web pages allowed to call this API from a browser (CORS), comma-separated: the
    # supervision dashboard, which lists a township's open 四单 orders on its to-do.
    dashboard_origins: str = "http://127.0.0.1:8004,http://localhost:8004"
