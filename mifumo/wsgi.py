import os

from django.core.wsgi import get_wsgi_application

from mifumo.chunked import ChunkedBodies
from mifumo.server_environ import ProcessEnvironDropped

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
# Chunked request bodies are read before Django sees the request (mifumo/chunked.py), and the
# server process's environment variables are not part of a request (mifumo/server_environ.py).
application = ProcessEnvironDropped(ChunkedBodies(get_wsgi_application()))
