import os

from django.core.wsgi import get_wsgi_application

from mifumo.chunked import ChunkedBodies

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
# Chunked request bodies are read before Django sees the request (mifumo/chunked.py).
application = ChunkedBodies(get_wsgi_application())
