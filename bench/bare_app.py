"""The ceiling: a bare Flask endpoint that reads the body and answers 200, nothing else."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks")
def receive():
    request.get_data(cache=False)
    return {"status": "ok"}, 200
