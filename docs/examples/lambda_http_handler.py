"""Serves an unchanged AWS Lambda rotation function (lambda_function.py) over HTTP, for a
Coffer rotator of kind `http`: Coffer POSTs each step's event, this calls lambda_handler.

    python3 lambda_http_handler.py 127.0.0.1 8080   # next to lambda_function.py
"""
import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer

import lambda_function  # your rotation function, unchanged


class RotationHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        # A Lambda runs in its secret's Region: the boto3 clients the function makes use it.
        # (HTTPServer handles one request at a time, so setting the environment is safe.)
        region = event["SecretId"].split(":")[3]
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
        try:
            lambda_function.lambda_handler(event, None)
            status, answer = 200, b"ok"
        except Exception as error:  # the step failed: Coffer keeps AWSCURRENT and retries
            traceback.print_exc()
            status, answer = 500, f"{type(error).__name__}: {error}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


if __name__ == "__main__":
    HTTPServer((sys.argv[1], int(sys.argv[2])), RotationHandler).serve_forever()
