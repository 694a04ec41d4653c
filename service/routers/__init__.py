"""The service's routes, one router per resource: perceive, models, health (and metrics), the web page."""
