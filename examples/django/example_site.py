"""A one-file Django site behind the caddy-irma gateway, to try irma_gateway with (and test it).

    python3 example_site.py [--listen 127.0.0.1:9090] [--jwks-url URL] [--issuer URL]
                            [--audience NAME] [--policy PREFIX=POLICY ...]

Every path under a --policy prefix shows what the gateway asserts (request.irma), as a page or as
JSON for Accept: application/json. It serves with the standard library's wsgiref, which is fine
for trying it out, not for production: there, run your own project under a WSGI server.
"""

import argparse
import json
import os
import secrets
import sys
import urllib.parse
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import re_path
from django.utils.html import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # irma_gateway, beside this file


def hello(request):
    """Shows who the gateway says the visitor is: request.irma, set by IrmaGatewayMiddleware."""
    irma = request.irma
    # Plain headers that a route may add with "header" in irma_auth: convenient, not signed.
    legacy = {k: v for k, v in request.headers.items() if k.lower().startswith("x-irma-attr-")}
    if "application/json" in request.headers.get("Accept", ""):
        answer = {"policy": irma.policy, "subject": irma.subject, "attributes": irma.attributes,
                  "path": request.path, "legacy_headers": legacy}
        response = HttpResponse(json.dumps(answer), content_type="application/json")
    else:
        rows = "".join("<tr><td><code>%s</code></td><td>%s</td></tr>\n" % (escape(k), escape(v))
                       for k, v in sorted(irma.attributes.items()))
        response = HttpResponse(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example upstream</title></head><body>\n"
            "<h1>Hello from the example upstream</h1>\n<p>Served by Django behind the gateway.</p>\n"
            "<p>Path: <code>%s</code></p>\n<p>Policy: <code>%s</code></p>\n<table>%s</table>\n</body></html>\n"
            % (escape(request.path), escape(irma.policy), rows),
            content_type="text/html; charset=utf-8",
        )
    response["Cache-Control"] = "no-store"  # about one person: no shared cache may keep it
    response["Vary"] = "Accept"
    return response


urlpatterns = [re_path(r"", hello)]


def parse_policy(value):
    prefix, sep, name = value.partition("=")
    if not sep or not prefix.startswith("/") or not name:
        raise argparse.ArgumentTypeError("%r: want PREFIX=POLICY, such as /adults/=adults" % value)
    return prefix, name


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:9090")
    p.add_argument("--jwks-url", default="http://localhost:8080/irma/jwks.json")
    p.add_argument("--issuer", default="http://localhost:8080")
    p.add_argument("--audience", default="caddy-irma")
    p.add_argument("--policy", action="append", type=parse_policy, metavar="PREFIX=POLICY")
    args = p.parse_args()
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=[urllib.parse.urlsplit(args.issuer).hostname, "127.0.0.1", "localhost", "[::1]"],
        ROOT_URLCONF=__name__,
        # First: nothing else runs for a request that the gateway did not vouch for.
        MIDDLEWARE=["irma_gateway.middleware.IrmaGatewayMiddleware"],
        IRMA_GATEWAY={
            "JWKS_URL": args.jwks_url,
            "ISSUER": args.issuer,
            "AUDIENCE": args.audience,
            "POLICIES": dict(args.policy or [("/members/", "members")]),
        },
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                 "loggers": {"irma_gateway": {"handlers": ["stderr"], "level": "INFO"}}},
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    host, _, port = args.listen.rpartition(":")
    server = make_server(host.strip("[]"), int(port), get_wsgi_application(), server_class=ThreadingWSGIServer)
    bound_host, bound_port = server.server_address[:2]
    print("upstream: listening on http://%s:%d (Django %s)" % (bound_host, bound_port, django.get_version()), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
