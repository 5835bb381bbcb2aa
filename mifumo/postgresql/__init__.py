"""The PostgreSQL database backend (``DATABASES["default"]["ENGINE"]``)."""
