import os

from django.core.wsgi import get_wsgi_application

from mifumo.chunked import ChunkedBodies
from mifumo.server_environ import ProcessEnvironDropped

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
django_application = get_wsgi_application()

# After the apps are loaded: it reads models and settings when imported.
from sms.fast_send import FastSend  # noqa: E402

# Chunked request bodies are read before Django sees the request (mifumo/chunked.py), and the
# server process's environment variables are not part of a request (mifumo/server_environ.py).
# The commonest send takes a shorter road to the same answer (sms/fast_send.py).
application = ProcessEnvironDropped(ChunkedBodies(FastSend(django_application)))
