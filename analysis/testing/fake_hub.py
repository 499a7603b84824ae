"""A fake Hugging Face hub on 127.0.0.1 that speaks the HTTP huggingface_hub's own client
(HfApi, HfFileSystem, hf_hub_download, transformers) uses, for tests and benchmarks.

    hub = FakeHub(latency=0.05)
    hub.add("EleutherAI/pythia-70m", "step1000", folder)   # a branch holding folder's files
    with hub:                                             # hub.url: set HF_ENDPOINT to it
        ...
    hub.log                                               # every request, hub and CDN

The API answers refs, revision (repo info), tree (with `Link` pagination), paths-info and
resolve; LFS files (.safetensors, .bin, ...) resolve with a 302 to a second server, the
"CDN", that serves them by Range (analysis.testing.http_range_server), as the real hub does.
Each answer waits `latency` seconds first, on both servers.

Faults, as the real hub and proxies show them: `hub.ignore_range = True` makes the CDN answer
every request 200 with the whole file (a proxy that drops Range); `hub.throttle(pattern, n)`
answers the next n API requests whose path matches `pattern` with 429 and the hub's
rate-limit headers (Retry-After, RateLimit, RateLimit-Policy).
"""

import hashlib
import http.server
import json
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .http_range_server import RangeHandler

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


@dataclass
class _File:
    path: Path  # local file with the content
    size: int
    blob_id: str  # git blob id (sha1), for every file
    sha256: str | None  # LFS oid, for LFS files only


def _sha(path: Path, algo: str, prefix: bytes = b"") -> str:
    h = hashlib.new(algo, prefix)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _HubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.server.hub._record("hub", self.command, self.path, self.headers.get("Range"), status, len(body))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, headers=None):
        self._answer(200, json.dumps(value).encode(), headers)

    def _error(self, status: int, code: str, message: str):
        self._answer(status, json.dumps({"error": message}).encode(), {"X-Error-Code": code, "X-Error-Message": message})

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(n).decode())

    def do_GET(self):
        self._route(None)

    def _route(self, body):
        time.sleep(self.server.hub.latency)
        hub, url = self.server.hub, urlsplit(self.path)
        wait = hub._throttled(self.path)
        if wait is not None:  # as the hub answers once a 5-minute quota is used up
            return self._answer(429, b"", {"Retry-After": str(wait), "RateLimit": f'"api";r=0;t={wait}',
                                           "RateLimit-Policy": '"fixed window";"api";q=500;w=300'})
        query = parse_qs(url.query)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(/.*)?", url.path)
        if m:
            repo, rest = m.group(1), m.group(2) or ""
            if repo not in hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo} not found")
            if rest == "/refs":
                return self._json(hub.refs(repo, "include_prs" in query))
            if rest == "" or rest.startswith("/revision/"):
                rev = unquote(rest[len("/revision/"):]) if rest else "main"
                commit = hub.commit_of(repo, rev)
                if commit is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                files = hub.repos[repo][commit]
                return self._json({"id": repo, "modelId": repo, "sha": commit, "private": False, "disabled": False,
                                   "gated": False, "siblings": [{"rfilename": p} for p in sorted(files)]})
            t = re.fullmatch(r"/(tree|paths-info)/([^/]+)(/.*)?", rest)
            if t:
                commit = hub.commit_of(repo, unquote(t.group(2)))
                if commit is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(t.group(2))}")
                if t.group(1) == "paths-info":
                    form = parse_qs(body or "")
                    paths = form.get("paths", [])
                    return self._json([e for e in (hub.entry(repo, commit, p) for p in paths) if e is not None])
                folder = unquote(t.group(3) or "").strip("/")
                entries = hub.tree(repo, commit, folder, query.get("recursive", ["False"])[0].lower() == "true")
                if entries is None:
                    return self._error(404, "EntryNotFound", f"{folder} does not exist on {commit}")
                start = int(query.get("cursor", ["0"])[0])
                page, headers = entries[start:start + hub.page_size], {}
                if start + hub.page_size < len(entries):
                    keep = "".join(f"{k}={v[0]}&" for k, v in query.items() if k != "cursor")
                    nxt = f"{hub.url}{url.path}?{keep}cursor={start + hub.page_size}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                return self._json(page, headers)
            if rest == "/discussions" or rest.startswith("/discussions"):
                return self._json({"discussions": [], "count": 0, "start": 0, "numClosedDiscussions": 0})
            return self._error(404, "NotFound", f"fake hub: no route {url.path}")
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", url.path)
        if m:
            repo, rev, name = m.group(1), unquote(m.group(2)), unquote(m.group(3))
            if repo not in hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo} not found")
            commit = hub.commit_of(repo, rev)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            f = hub.repos[repo][commit].get(name)
            if f is None:
                self._answer(404, b"Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit,
                                                       "X-Error-Message": "Entry not found"}, "text/plain")
                return
            if f.sha256:  # LFS: the hub redirects to the CDN, saying size and hash
                self._answer(302, b"", {"Location": f"{hub.cdn_url}/{f.sha256}", "X-Repo-Commit": commit,
                                        "X-Linked-Size": str(f.size), "X-Linked-Etag": f'"{f.sha256}"',
                                        "ETag": f'"{f.blob_id}"', "Accept-Ranges": "bytes"})
                return
            data = f.path.read_bytes()
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if rng:
                a, b = int(rng.group(1)), min(int(rng.group(2) or f.size - 1), f.size - 1)
                self._answer(206, data[a:b + 1], {"X-Repo-Commit": commit, "ETag": f'"{f.blob_id}"',
                                                   "Content-Range": f"bytes {a}-{b}/{f.size}"}, "application/octet-stream")
                return
            self._answer(200, data, {"X-Repo-Commit": commit, "ETag": f'"{f.blob_id}"', "Accept-Ranges": "bytes"},
                         "application/octet-stream")
            return
        self._error(404, "NotFound", f"fake hub: no route {url.path}")


class _CdnHandler(RangeHandler):
    """The Range server's handler, serving LFS blobs by their sha256 and logging each answer."""

    protocol_version = "HTTP/1.1"

    def translate_path(self, path):
        f = self.server.hub.blobs.get(urlsplit(path).path.strip("/"))
        return str(f.path) if f else "/nonexistent"

    def send_head(self):
        time.sleep(self.server.hub.latency)
        if self.server.hub.ignore_range and "Range" in self.headers:
            del self.headers["Range"]  # a proxy that drops Range: 200 and the whole file
        out = super().send_head()
        n = getattr(self, "_remaining", 0) if out else 0
        status = 404 if out is None else 206 if self.headers.get("Range") else 200
        self.server.hub._record("cdn", self.command, self.path, self.headers.get("Range"), status, n)
        return out


class FakeHub:
    """Repos of branches over local folders, served as the hub and its CDN on two ports."""

    def __init__(self, latency: float = 0.0, page_size: int = 1000):
        self.latency, self.page_size = latency, page_size
        self.repos = {}  # repo -> {commit: {path: _File}}
        self.branches = {}  # repo -> {branch: commit}
        self.blobs = {}  # sha256 -> _File
        self.log, self._lock = [], threading.Lock()
        self.ignore_range, self._throttles = False, []  # faults (see the module's doc)
        self.hub = _Server(("127.0.0.1", 0), _HubHandler)
        self.cdn = _Server(("127.0.0.1", 0), _CdnHandler)
        self.cdn.bytes_sent = self.cdn.file_bytes = 0  # RangeHandler counts into these
        for s in (self.hub, self.cdn):
            s.hub = self
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def add(self, repo: str, branch: str, folder, commit: str | None = None, sha256: dict | None = None) -> str:
        """Serve every file under `folder` as branch `branch` of `repo`; returns its commit.
        `sha256`: {path: hash} for LFS files whose hash is known (skips hashing big files)."""
        folder, files = Path(folder), {}
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                size = p.stat().st_size
                lfs = rel.endswith(LFS_SUFFIXES)
                sha = (sha256 or {}).get(rel) or (_sha(p, "sha256") if lfs else None)
                blob = hashlib.sha1(f"{rel}:{sha}".encode()).hexdigest() if lfs else _sha(p, "sha1", f"blob {size}\0".encode())
                files[rel] = _File(p, size, blob, sha)
                if sha:
                    self.blobs[sha] = files[rel]
        commit = commit or hashlib.sha1(json.dumps([repo, branch, sorted((k, f.blob_id) for k, f in files.items())]).encode()).hexdigest()
        self.repos.setdefault(repo, {})[commit] = files
        self.branches.setdefault(repo, {})[branch] = commit
        return commit

    def commit_of(self, repo: str, rev: str) -> str | None:
        if rev in self.repos.get(repo, {}):
            return rev
        return self.branches.get(repo, {}).get(rev)

    def refs(self, repo: str, include_prs: bool) -> dict:
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in self.branches[repo].items()]
        return {"branches": branches, "converts": [], "tags": [], **({"pullRequests": []} if include_prs else {})}

    def entry(self, repo: str, commit: str, path: str) -> dict | None:
        files = self.repos[repo][commit]
        f = files.get(path)
        if f is not None:
            out = {"type": "file", "oid": f.blob_id, "size": f.size if not f.sha256 else 134, "path": path}
            if f.sha256:
                out.update(size=f.size, lfs={"oid": f.sha256, "size": f.size, "pointerSize": 134})
            return out
        if any(p.startswith(path.rstrip("/") + "/") for p in files):
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}
        return None

    def tree(self, repo: str, commit: str, folder: str, recursive: bool) -> list[dict] | None:
        files, prefix = self.repos[repo][commit], f"{folder}/" if folder else ""
        names = set()
        for p in files:
            if p.startswith(prefix):
                parts = p[len(prefix):].split("/")
                names.update(prefix + "/".join(parts[:i + 1]) for i in range(len(parts) if recursive else 1))
        if folder and not names:
            return None
        return [self.entry(repo, commit, n) for n in sorted(names)]

    def throttle(self, pattern: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` hub requests whose path matches regex `pattern` with 429,
        asking the client to come back in `retry_after` seconds."""
        with self._lock:
            self._throttles.append([re.compile(pattern), times, retry_after])

    def _throttled(self, path: str) -> int | None:
        with self._lock:
            for t in self._throttles:
                if t[1] > 0 and t[0].search(path):
                    t[1] -= 1
                    return t[2]
        return None

    def _record(self, server, method, path, rng, status, nbytes):
        with self._lock:
            self.log.append({"server": server, "method": method, "path": path, "range": rng, "status": status,
                             "bytes": nbytes})

    def requests(self, server: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.log if server is None or r["server"] == server]

    def reset(self):
        with self._lock:
            self.log.clear()

    @property
    def bytes_sent(self) -> int:
        """Body bytes of every answer (API, small files and CDN)."""
        with self._lock:
            return sum(r["bytes"] for r in self.log)

    def resolve_url(self, repo: str, rev: str, path: str) -> str:
        return f"{self.url}/{repo}/resolve/{quote(rev, safe='')}/{path}"

    def __enter__(self):
        for s in (self.hub, self.cdn):
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()


def point_client_at(url: str) -> dict:
    """Point the imported huggingface_hub at `url` (what HF_ENDPOINT does before import);
    returns the previous values for `restore_client`. Tests use it through monkeypatch."""
    import huggingface_hub.constants as c
    import huggingface_hub.hf_api as hf_api

    old = {"ENDPOINT": c.ENDPOINT, "HUGGINGFACE_CO_URL_TEMPLATE": c.HUGGINGFACE_CO_URL_TEMPLATE,
           "api": hf_api.api.endpoint, "env": os.environ.get("HF_ENDPOINT")}
    c.ENDPOINT, c.HUGGINGFACE_CO_URL_TEMPLATE = url, url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url
    os.environ["HF_ENDPOINT"] = url  # for subprocesses
    return old


def restore_client(old: dict) -> None:
    import huggingface_hub.constants as c
    import huggingface_hub.hf_api as hf_api

    c.ENDPOINT, c.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = old["ENDPOINT"], old["HUGGINGFACE_CO_URL_TEMPLATE"], old["api"]
    if old["env"] is None:
        os.environ.pop("HF_ENDPOINT", None)
    else:
        os.environ["HF_ENDPOINT"] = old["env"]


@contextmanager
def client_on(url: str):
    """The imported huggingface_hub pointed at `url` while the block runs, restored after."""
    old = point_client_at(url)
    try:
        yield
    finally:
        restore_client(old)
