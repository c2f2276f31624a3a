"""A minimal Confluent-compatible schema registry for the avro-confluent tests.

No Confluent-compatible registry server installs on the CI machine (Confluent's and Apicurio's
come from Maven or Docker, Karapace is not on PyPI), so the tests serve the REST subset that
confluent-kafka's real SchemaRegistryClient/AvroSerializer and meshd use:

  POST /subjects/{subject}/versions      register (the same schema text gets the same id)
  GET  /schemas/ids/{id}                 a schema by id
  GET  /subjects/{subject}/versions      the versions of a subject
  GET  /subjects/{subject}/versions/{v}  one version ("latest" too)

Anything else answers 404 with Confluent's error codes. State lives in a JSON file, so a test can
stop the server (an outage) and start it again with the same ids.

Usage: registry.py <port> <state.json>
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
STATE = sys.argv[2]


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"schemas": [], "subjects": {}}


def save(state):
    with open(STATE, "w") as f:
        json.dump(state, f)


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def not_found(self, code, message):
        self.reply(404, {"error_code": code, "message": message})

    def do_POST(self):
        path = self.path.split("?")[0]
        match = re.fullmatch(r"/subjects/([^/]+)/versions", path)
        if not match:
            return self.not_found(404, "not found")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = load()
        schema = body["schema"]
        if schema in state["schemas"]:
            schema_id = state["schemas"].index(schema) + 1
        else:
            state["schemas"].append(schema)
            schema_id = len(state["schemas"])
        versions = state["subjects"].setdefault(match.group(1), [])
        if schema_id not in versions:
            versions.append(schema_id)
        save(state)
        self.reply(200, {"id": schema_id})

    def do_GET(self):
        path = self.path.split("?")[0]
        state = load()
        if match := re.fullmatch(r"/schemas/ids/(\d+)", path):
            schema_id = int(match.group(1))
            if 1 <= schema_id <= len(state["schemas"]):
                return self.reply(200, {"schema": state["schemas"][schema_id - 1]})
            return self.not_found(40403, f"Schema {schema_id} not found")
        if match := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            if match.group(1) not in state["subjects"]:
                return self.not_found(40401, "Subject not found")
            return self.reply(200, list(range(1, len(state["subjects"][match.group(1)]) + 1)))
        if match := re.fullmatch(r"/subjects/([^/]+)/versions/(\w+)", path):
            subject, version = match.groups()
            ids = state["subjects"].get(subject)
            if not ids:
                return self.not_found(40401, "Subject not found")
            index = len(ids) if version == "latest" else int(version)
            if not 1 <= index <= len(ids):
                return self.not_found(40402, "Version not found")
            schema_id = ids[index - 1]
            return self.reply(200, {
                "subject": subject,
                "version": index,
                "id": schema_id,
                "schema": state["schemas"][schema_id - 1],
            })
        return self.not_found(404, "not found")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
