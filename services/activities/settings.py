from shared.settings import CommonSettings


class ActivitiesSettings(CommonSettings):
    http_port: int = 8002
