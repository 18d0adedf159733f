from shared.settings import CommonSettings


class RegistrySettings(CommonSettings):
    http_port: int = 8001
