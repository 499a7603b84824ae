"""A local HTTP server on 127.0.0.1 that serves a folder with Range support and counts bytes:
the hub's byte-range reads, without the network, for tests and benchmarks/bytes_moved.py."""

import http.server
import os
import re
import threading
from functools import partial


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.exists(path):
            return super().send_head()
        size = os.path.getsize(path)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = (int(m.group(1)), int(m.group(2) or size - 1)) if m else (0, size - 1)
        end = min(end, size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206 if m else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if m:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        while remaining is None or remaining > 0:
            chunk = source.read(65536 if remaining is None else min(65536, remaining))
            if not chunk:
                break
            self.server.bytes_sent += len(chunk)  # before sending: the client cannot see it uncounted
            if self.path.endswith((".safetensors", ".bin", ".json")):
                self.server.file_bytes += len(chunk)
            outputfile.write(chunk)
            if remaining is not None:
                remaining -= len(chunk)


class RangeServer:
    """with RangeServer(folder) as srv: srv.url, srv.bytes_sent"""

    def __init__(self, folder):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(folder)))
        self.httpd.bytes_sent = 0
        self.httpd.file_bytes = 0  # bytes of checkpoint files (not directory listings)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def bytes_sent(self) -> int:
        return self.httpd.bytes_sent

    @property
    def file_bytes(self) -> int:
        return self.httpd.file_bytes

    def reset(self):
        self.httpd.bytes_sent = 0
        self.httpd.file_bytes = 0

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
