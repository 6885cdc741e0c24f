"""gunicorn's default configuration file, read from the working directory: the service's settings.

`gunicorn` started here (production profile, `DATABASE_URL` set) serves the API with the settings
of `memory_service.gunicorn_conf`, all read from the environment. `memory-service serve
--workers N` uses the same module and also handles the embedded profile's Postgres.
"""

from memory_service.gunicorn_conf import *  # noqa: F403
