from services.activities.app import create_app, service

service.serve(create_app())
