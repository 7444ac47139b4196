"""The Flask "log streaming with SSE" proof of concept that logcast replaces,
re-created as a benchmark peer: same API, same design (a thread per writer,
a generator per stream that re-reads the file every 100 ms), served by the
threaded Werkzeug server as the original was. Not part of logcast.

Usage: python3 flask_poc.py --port 5200 --log-dir /tmp/poc-logs
"""
import argparse
import os
import random
import threading
import time
import uuid
from datetime import datetime

from flask import Flask, Response, jsonify, request

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua").split()

app = Flask(__name__)
LOG_DIR = "logs"


def sentence():
    return " ".join(random.choice(WORDS) for _ in range(random.randint(4, 12))).capitalize() + "."


def random_text():
    kind = random.randint(0, 3)
    if kind == 0:
        return sentence()
    if kind == 1:
        return " ".join(sentence() for _ in range(random.randint(3, 6)))
    if kind == 2:
        return random.choice(WORDS)
    return f"[{datetime.now().isoformat()}] {sentence()}"


def writer(path, duration):
    end = time.time() + duration
    while time.time() < end:
        time.sleep(0.5)
        with open(path, "a") as f:
            f.write(random_text() + "\n")


@app.route("/api/logs", methods=["POST"])
def create_log():
    duration = int(request.args.get("duration", 30))
    log_id = str(uuid.uuid4())
    path = os.path.join(LOG_DIR, f"{log_id}.log")
    with open(path, "w") as f:
        f.write(f"[LOG CREATED] {datetime.now().isoformat()}\n")
    threading.Thread(target=writer, args=(path, duration), daemon=True).start()
    return jsonify({"log_id": log_id, "message": f"Log file created with ID: {log_id}",
                    "stream_url": f"/api/logs/{log_id}/stream"}), 201


@app.route("/api/logs/<log_id>")
def log_info(log_id):
    path = os.path.join(LOG_DIR, f"{log_id}.log")
    if not os.path.exists(path):
        return jsonify({"error": "Log file not found"}), 404
    return jsonify({"log_id": log_id, "file_size": os.path.getsize(path),
                    "created_at": datetime.fromtimestamp(os.path.getctime(path)).isoformat(),
                    "stream_url": f"/api/logs/{log_id}/stream"})


@app.route("/api/logs/<log_id>/stream")
def stream(log_id):
    path = os.path.join(LOG_DIR, f"{log_id}.log")
    if not os.path.exists(path):
        return jsonify({"error": "Log file not found"}), 404

    def generate():
        with open(path) as f:
            while True:
                line = f.readline()
                if line:
                    yield f"data: {line.rstrip()}\n\n"
                else:
                    time.sleep(0.1)

    return Response(generate(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@app.route("/")
def index():
    return "<!doctype html><title>Log streaming</title><h1>Log streaming with SSE</h1>"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5200)
    parser.add_argument("--log-dir", default="logs")
    args = parser.parse_args()
    LOG_DIR = args.log_dir
    os.makedirs(LOG_DIR, exist_ok=True)
    app.run(host="127.0.0.1", port=args.port, threaded=True)
