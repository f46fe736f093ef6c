"""The floor of a heartbeat over HTTP (bench/agents.py --http): a WSGI app that reads the
request body and answers what a heartbeat answers, with no Django and no database. What
gunicorn (config/gunicorn.conf.py, as the Procfile runs it) costs per request on its own."""

ANSWER = b'{"status": "waiting"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))]


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [ANSWER]
