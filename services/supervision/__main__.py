from services.supervision.app import create_app, service

service.serve(create_app())
