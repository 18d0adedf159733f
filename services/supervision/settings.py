from shared.settings import CommonSettings


class SupervisionSettings(CommonSettings):
    http_port: int = 8004
