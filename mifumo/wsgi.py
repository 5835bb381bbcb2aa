import os

from django.core.wsgi import get_wsgi_application

from mifumo.chunked import ChunkedBodies
from mifumo.server_environ import ProcessEnvironDropped

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
django_application = get_wsgi_application()

# After the apps are loaded: it reads models and settings when imported.
from integration.fast import FastRead  # noqa: E402
from sms.fast_send import FastSend  # noqa: E402

# Chunked request bodies are read before Django sees the request (mifumo/chunked.py), and the
# server process's environment variables are not part of a request (mifumo/server_environ.py).
# The commonest send and the reads a client polls take a shorter road to the same answer
# (integration/fast.py).
application = ProcessEnvironDropped(ChunkedBodies(FastRead(FastSend(django_application))))
