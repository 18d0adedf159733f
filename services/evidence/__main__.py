from services.evidence.app import create_app, service

service.serve(create_app())
