"""A loopback fake of the Hugging Face Hub HTTP API, for tests.

`FakeHub` keeps repositories in memory and `FakeHubServer` serves them on ``127.0.0.1`` (an OS-chosen port)
from a daemon thread, speaking enough of the Hub API for `huggingface_hub` (2.x, legacy LFS path, i.e. with
``HF_HUB_DISABLE_XET=1``) and `datasets` to push and pull for real:

* repos: ``POST /api/repos/create`` (409 + ``url`` when it exists), ``POST /api/repos/delete``,
  ``PUT /api/{type}s/{repo}/settings``, ``GET /api/whoami-v2``, ``POST /api/validate-yaml``;
* reads: ``GET /api/{type}s/{repo}[/revision/{rev}]``, ``/tree/{rev}[/{path}]``, ``POST /paths-info/{rev}``,
  ``/refs``, ``/commits/{rev}``, ``HEAD``/``GET /[{type}s/]{repo}/resolve/{rev}/{path}`` (with ``Range``);
* writes: ``POST /preupload/{rev}``, ``POST /commit/{rev}`` (NDJSON), ``POST /branch/{name}``,
  ``DELETE /branch/{name}``, ``POST /tag/{rev}``, ``DELETE /tag/{name}``, and the git-LFS batch API
  (``POST /[{type}s/]{repo}.git/info/lfs/objects/batch``, a pre-signed ``PUT`` per object, ``verify``).

Model, dataset and space repos are all supported (a space needs an ``sdk`` when it is created, and a commit
that gives it a README.md without valid Space metadata — ``sdk``, a gradio ``sdk_version`` — is refused).
Commits are immutable snapshots with unique 40-hex shas; branches (``main`` plus any created) and tags point at
them. A new repo starts, like on the Hub, with one
commit holding a ``.gitattributes`` that routes the usual binary suffixes (``*.safetensors``, ``*.parquet``,
``*.bin``, ...) to LFS.

What is checked, as the Hub does (so a broken upload cannot pass):

* unknown repo -> 404 ``X-Error-Code: RepoNotFound``; unknown revision -> 404 ``RevisionNotFound``;
  missing file -> 404 ``EntryNotFound`` (with ``X-Repo-Commit``, which `hf_hub_download` caches);
* invalid repo id / repo name -> 400; writes without a valid ``Authorization: Bearer`` token -> 401;
* a commit payload that is not valid NDJSON, lacks the leading ``header`` line, has bad base64, an
  unknown operation, an invalid path, an ``lfsFile`` whose object was never uploaded to this repo (or whose
  ``size`` differs), a delete of a missing file, or a stale ``parentCommit`` -> 4xx and no new commit;
* a regular (non-LFS) file that should have gone through LFS (matches an LFS rule of ``.gitattributes``,
  is binary, or is at least ``lfs_threshold`` bytes) -> 400. The real Hub rejects binary and >10 MiB
  regular files; refusing ``.gitattributes`` matches too is stricter, and catches a client that ignores
  the ``preupload`` answer;
* an LFS ``PUT`` whose body has the wrong size or the wrong sha256 -> 400 and nothing is stored.

No-op commits: `huggingface_hub` already drops unchanged files client side (the ``preupload`` answer carries
each existing file's ``oid``: git blob sha1 for regular files, sha256 for LFS ones) and, when nothing is
left, returns the current head without calling ``/commit``. When a ``/commit`` does arrive whose resulting
tree equals the head's tree, this server answers 200 with ``commitOid`` = the current head and creates no
commit. So pushing the same folder twice never makes a new commit, whichever side notices.

Failure injection: ``hub.fail_next("commit", times=1, status=500)`` makes the next request(s) of that kind
fail before touching any state (kinds: see `FAILURE_KINDS`). Note that `huggingface_hub` retries 429/5xx
with backoff (1, 2, 4, 8, 8 s) on ``preupload``, LFS ``batch``/``PUT``/``verify`` and some reads, but not
on ``commit``: to make those fail fast use a non-retried status such as 403, or ``times`` > 5 and a
patched ``time.sleep``.

Deliberate simplifications: LFS objects are served directly (the Hub redirects to a CDN on another host,
which a single loopback host cannot imitate: `huggingface_hub` follows same-host redirects and would then
miss ``X-Repo-Commit``); no Xet, no pull requests (``create_pr`` -> 400), no multipart LFS, no pagination
(one page holds everything); repo ids must be ``namespace/name``; any valid token sees every repo.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "FakeHubServer", "HubCommit", "HubError", "FAILURE_KINDS", "DEFAULT_TOKEN"]

DEFAULT_TOKEN = "hf_fakeMsclTestToken0123456789abcdef"
DEFAULT_USER = "mscl-tester"
REPO_TYPES = ("model", "dataset", "space")
SPACE_SDKS = ("gradio", "docker", "static")  # what `huggingface_hub.constants.SPACES_SDK_TYPES` allows
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL_TO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
FAILURE_KINDS = (
    "whoami",
    "create_repo",
    "delete_repo",
    "repo_settings",
    "validate_yaml",
    "repo_info",
    "tree",
    "paths_info",
    "refs",
    "commits",
    "preupload",
    "commit",
    "branch",
    "tag",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "resolve",
)

# What a new repo's first commit holds (a shortened version of the Hub's default `.gitattributes`).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
        "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
        "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
        "*.mp4", "*.mp3", "*.wav", "*.png", "*.jpg", "*.jpeg", "*.webp",
    )
)

_NAME_RE = re.compile(r"^(?!.*(?:--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


class HubError(Exception):
    """An HTTP error answer: status, message and, when the Hub sends one, its ``X-Error-Code``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Blob:
    """A file's content and the identifiers the Hub reports for it."""

    content: bytes
    lfs: bool
    sha256: str
    git_oid: str  # git blob sha1 of the content, or of the LFS pointer file for LFS files
    pointer_size: int

    @classmethod
    def make(cls, content: bytes, lfs: bool) -> "Blob":
        sha256 = hashlib.sha256(content).hexdigest()
        if lfs:
            pointer = _LFS_POINTER.format(oid=sha256, size=len(content)).encode()
            return cls(content, True, sha256, _git_blob_sha1(pointer), len(pointer))
        return cls(content, False, sha256, _git_blob_sha1(content), 0)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def etag(self) -> str:
        """What ``/resolve`` sends as ETag (sha256 for LFS files, git sha1 otherwise), also the preupload oid."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass(frozen=True)
class HubCommit:
    """An immutable snapshot: ``files`` maps every path of the tree to its `Blob`."""

    sha: str
    parents: tuple[str, ...]
    files: Mapping[str, Blob]
    title: str
    message: str
    date: str
    authors: tuple[str, ...]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, HubCommit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content, uploaded to this repo
    sdk: str | None = None  # spaces: the SDK chosen at creation

    @property
    def url_path(self) -> str:
        return URL_PREFIXES[self.repo_type] + self.repo_id


@dataclass
class _Failure:
    remaining: int
    status: int
    message: str


def _validate_path_in_repo(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/") or "\\" in path:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _gitattributes_lfs_patterns(files: Mapping[str, Blob]) -> list[str]:
    blob = files.get(".gitattributes")
    if blob is None:
        return []
    patterns = []
    for line in blob.content.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _matches_any(path: str, patterns: list[str]) -> bool:
    """gitattributes/gitignore-style match: a pattern without '/' matches the basename anywhere."""
    basename = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        anchored = pattern.lstrip("/")
        if "/" in pattern.rstrip("/"):
            if fnmatch.fnmatchcase(path, anchored) or fnmatch.fnmatchcase(path, anchored.rstrip("/") + "/*"):
                return True
        elif fnmatch.fnmatchcase(basename, pattern.rstrip("/")) or any(
            fnmatch.fnmatchcase(part, pattern.rstrip("/")) for part in path.split("/")[:-1]
        ):
            return True
    return False


class FakeHub:
    """In-memory Hub state plus the logic of every endpoint (the HTTP handler only parses and dispatches).

    Test-facing helpers: `fail_next`, `head`, `commits`, `files`, `file_bytes`, `seed`, `create_repo`,
    `repo_exists`, `reset`, and the logs `requests` (``(method, path, status)``), `unhandled` (requests no
    route matched, to discover what a client needs) and `server_errors` (tracebacks of handler crashes).
    """

    def __init__(self, token: str = DEFAULT_TOKEN, user: str = DEFAULT_USER, lfs_threshold: int = 10 * 1024 * 1024):
        self.token = token
        self.user = user
        self.lfs_threshold = lfs_threshold
        self.endpoint = "http://127.0.0.1"  # set by FakeHubServer once bound
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._salt = secrets.token_hex(8)
        self.reset()

    # ------------------------------------------------------------------ state and test helpers
    def reset(self) -> None:
        """Forget every repo, LFS object, pending upload, injected failure and log."""
        with self._lock:
            self._repos: dict[tuple[str, str], Repo] = {}
            self._tickets: dict[str, tuple[tuple[str, str], str, int]] = {}
            self._failures: dict[str, list[_Failure]] = {}
            self.requests: list[tuple[str, str, int]] = []
            self.unhandled: list[tuple[str, str]] = []
            self.server_errors: list[str] = []

    def fail_next(self, kind: str, times: int = 1, status: int = 500, message: str | None = None) -> None:
        """Make the next ``times`` requests of ``kind`` (one of `FAILURE_KINDS`) answer ``status``, changing nothing."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"Unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
        if times < 1 or not 400 <= status <= 599:
            raise ValueError(f"times must be >= 1 and status a 4xx/5xx code, got times={times}, status={status}")
        with self._lock:
            self._failures.setdefault(kind, []).append(
                _Failure(times, status, message or f"Injected failure ({kind})")
            )

    def pending_failures(self, kind: str) -> int:
        """How many injected failures of ``kind`` have not fired yet."""
        with self._lock:
            return sum(f.remaining for f in self._failures.get(kind, []))

    def maybe_fail(self, kind: str) -> None:
        with self._lock:
            queue = self._failures.get(kind)
            if not queue:
                return
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining == 0:
                queue.pop(0)
        raise HubError(failure.status, failure.message)

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def head(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> str:
        """The commit sha that ``revision`` (branch, tag or sha) points to."""
        with self._lock:
            return self._resolve(self._get_repo(repo_type, repo_id), revision).sha

    def commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[HubCommit]:
        """First-parent history of ``revision``, newest first (the repo's initial commit is last)."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit: HubCommit | None = self._resolve(repo, revision)
            history = []
            while commit is not None:
                history.append(commit)
                commit = repo.commits[commit.parents[0]] if commit.parents else None
            return history

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Every file of the tree at ``revision``: path -> content."""
        with self._lock:
            commit = self._resolve(self._get_repo(repo_type, repo_id), revision)
            return {path: blob.content for path, blob in sorted(commit.files.items())}

    def file_info(self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main") -> Blob:
        """The stored `Blob` (content, ``lfs`` flag, sha256, git oid) of one file."""
        with self._lock:
            commit = self._resolve(self._get_repo(repo_type, repo_id), revision)
            if path not in commit.files:
                raise KeyError(path)
            return commit.files[path]

    def create_repo(
        self, repo_id: str, repo_type: str = "model", private: bool = False, exist_ok: bool = False,
        sdk: str | None = None,
    ) -> Repo:
        """Create a repo directly (no HTTP); it starts with a commit holding the default ``.gitattributes``.
        A space records its ``sdk`` (over HTTP it is required, as on the Hub)."""
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        if sdk is not None and (repo_type != "space" or sdk not in SPACE_SDKS):
            raise HubError(400, f"Invalid sdk {sdk!r} for a {repo_type} repo (spaces: one of {', '.join(SPACE_SDKS)})")
        namespace, _, name = repo_id.partition("/")
        if not (_NAME_RE.match(namespace) and _NAME_RE.match(name)) or name.endswith(".git"):
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected 'namespace/name' with [A-Za-z0-9._-]")
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                if exist_ok:
                    return self._repos[key]
                url = self._repo_url(repo_type, repo_id)
                raise HubError(409, "You already created this repo", headers={"X-Repo-Url": url})
            repo = Repo(repo_type, repo_id, private, _now_iso(), sdk=sdk)
            files = {".gitattributes": Blob.make(DEFAULT_GITATTRIBUTES.encode(), lfs=False)}
            initial = self._new_commit(repo, None, files, "initial commit", "")
            repo.branches["main"] = initial.sha
            self._repos[key] = repo
            return repo

    def seed(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str],
        repo_type: str = "model",
        branch: str = "main",
        message: str = "Seed files",
        lfs: bool | None = None,
    ) -> str:
        """Commit ``files`` directly (creating repo and branch if needed); returns the new head sha.

        ``lfs=None`` applies the same rule as ``preupload``; True/False forces the storage kind.
        """
        with self._lock:
            repo = self.create_repo(repo_id, repo_type, exist_ok=True)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches["main"]
            head = repo.commits[repo.branches[branch]]
            tree = dict(head.files)
            for path, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                is_lfs = lfs
                if is_lfs is None:
                    is_lfs = self._should_be_lfs(_validate_path_in_repo(path), len(data), data[:512], tree)
                tree[path] = Blob.make(data, is_lfs)
                if is_lfs:
                    repo.lfs_objects[tree[path].sha256] = data
            if tree != dict(head.files):
                repo.branches[branch] = self._new_commit(repo, head.sha, tree, message, "").sha
            return repo.branches[branch]

    # ------------------------------------------------------------------ internals
    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _check_read_access(self, repo: Repo, auth_ok: bool) -> None:
        if repo.private and not auth_ok:
            raise HubError(404, "Repository not found", "RepoNotFound")

    def _resolve(self, repo: Repo, revision: str) -> HubCommit:
        sha = None
        if revision.startswith("refs/heads/"):
            sha = repo.branches.get(revision[len("refs/heads/"):])
        elif revision.startswith("refs/tags/"):
            sha = repo.tags.get(revision[len("refs/tags/"):])
        elif revision in repo.branches:
            sha = repo.branches[revision]
        elif revision in repo.tags:
            sha = repo.tags[revision]
        elif _SHA1_RE.match(revision) and revision in repo.commits:
            sha = revision
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def _branch_of(self, repo: Repo, revision: str) -> str:
        branch = revision[len("refs/heads/"):] if revision.startswith("refs/heads/") else revision
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commits go to an existing branch)", "RevisionNotFound")
        return branch

    def _new_commit(
        self, repo: Repo, parent: str | None, files: dict[str, Blob], title: str, message: str
    ) -> HubCommit:
        tree_id = hashlib.sha1(
            "\n".join(f"{p}\0{b.git_oid}\0{int(b.lfs)}" for p, b in sorted(files.items())).encode()
        ).hexdigest()
        seed = f"{tree_id}\n{parent}\n{title}\n{message}\n{time.time_ns()}\n{next(self._counter)}\n{self._salt}"
        commit = HubCommit(
            sha=hashlib.sha1(seed.encode()).hexdigest(),
            parents=(parent,) if parent else (),
            files=MappingProxyType(dict(files)),
            title=title,
            message=message,
            date=_now_iso(),
            authors=(self.user,),
        )
        repo.commits[commit.sha] = commit
        return commit

    def _should_be_lfs(self, path: str, size: int, sample: bytes, tree: Mapping[str, Blob]) -> bool:
        return (
            _matches_any(path, _gitattributes_lfs_patterns(tree))
            or size >= self.lfs_threshold
            or b"\0" in sample[:512]
        )

    @staticmethod
    def _dirs_of(files: Mapping[str, Blob]) -> set[str]:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    @staticmethod
    def _tree_oid(files: Mapping[str, Blob], directory: str) -> str:
        prefix = directory + "/"
        listing = "\n".join(f"{p}\0{b.git_oid}" for p, b in sorted(files.items()) if p.startswith(prefix))
        return hashlib.sha1(listing.encode()).hexdigest()

    def _last_commit(self, repo: Repo, head: HubCommit, path: str, is_dir: bool) -> dict:
        def state(commit: HubCommit):
            if is_dir:
                return tuple(sorted((p, b.git_oid) for p, b in commit.files.items() if p.startswith(path + "/")))
            blob = commit.files.get(path)
            return blob.git_oid if blob else None

        current, target = head, state(head)
        while current.parents:
            parent = repo.commits[current.parents[0]]
            if state(parent) != target:
                break
            current = parent
        return {"id": current.sha, "title": current.title, "date": current.date}

    def _entry(self, repo: Repo, commit: HubCommit, path: str, expand: bool) -> dict:
        blob = commit.files.get(path)
        if blob is not None:
            entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
        else:
            entry = {"type": "directory", "oid": self._tree_oid(commit.files, path), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, path, blob is None)
        return entry

    # ------------------------------------------------------------------ endpoints (called by the handler)
    def whoami(self) -> dict:
        return {
            "type": "user",
            "id": "0" * 24,
            "name": self.user,
            "fullname": "MSCL Test User",
            "email": None,
            "emailVerified": False,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}},
        }

    def api_create_repo(self, body: dict) -> dict:
        name, organization = body.get("name"), body.get("organization")
        repo_type = body.get("type") or "model"
        if not isinstance(name, str) or (organization is not None and not isinstance(organization, str)):
            raise HubError(400, "Invalid repo name")
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{organization or self.user}/{name}"
        private = body.get("private")
        if private is None:
            private = body.get("visibility") == "private"
        sdk = body.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise HubError(400, f"A Space needs an sdk, one of {', '.join(SPACE_SDKS)} (got {sdk!r})")
        with self._lock:
            try:
                self.create_repo(repo_id, repo_type, private=bool(private), sdk=sdk if repo_type == "space" else None)
            except HubError as err:
                if err.status == 409:  # the Hub sends the url along, `create_repo(exist_ok=True)` reads it
                    raise HubError(409, err.message, headers=err.headers) from None
                raise
        return {"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id}

    def api_delete_repo(self, body: dict) -> dict:
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or self.user}/{body.get('name')}"
        with self._lock:
            self._get_repo(repo_type, repo_id)
            del self._repos[(repo_type, repo_id)]
        return {}

    def api_settings(self, repo: Repo, body: dict) -> dict:
        if "private" in body:
            repo.private = bool(body["private"])
        return {}

    def api_validate_yaml(self, body: dict) -> tuple[int, dict]:
        import yaml

        content = body.get("content")
        if not isinstance(content, str):
            return 400, {"errors": [{"message": "content must be a string"}], "warnings": []}
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                return 400, {"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}
            if meta is not None and not isinstance(meta, dict):
                return 400, {"errors": [{"message": "YAML metadata must be a mapping"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def api_repo_info(self, repo: Repo, revision: str, blobs: bool) -> dict:
        commit = self._resolve(repo, revision)
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.git_oid)
                if blob.lfs:
                    sibling["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        readme = commit.files.get("README.md")
        if readme is not None:
            card = self._card_data(readme.content)
            if card is not None:
                info["cardData"] = card
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            info["sdk"] = (info.get("cardData") or {}).get("sdk") or repo.sdk
        return info

    @staticmethod
    def _card_data(content: bytes) -> dict | None:
        import yaml

        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content.decode("utf-8", "replace"), re.DOTALL)
        if not match:
            return None
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return None
        return meta if isinstance(meta, dict) else None

    def api_tree(self, repo: Repo, revision: str, path: str, recursive: bool, expand: bool) -> list[dict]:
        commit = self._resolve(repo, revision)
        path = path.strip("/")
        dirs = self._dirs_of(commit.files)
        if path and path not in dirs:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        prefix = path + "/" if path else ""
        candidates = sorted(p for p in set(commit.files) | dirs if p.startswith(prefix) and p != path)
        if not recursive:
            candidates = [p for p in candidates if "/" not in p[len(prefix):]]
        # directories first, then files, as the Hub lists them
        candidates.sort(key=lambda p: (p not in dirs, p))
        return [self._entry(repo, commit, p, expand) for p in candidates]

    def api_paths_info(self, repo: Repo, revision: str, paths: list[str], expand: bool) -> list[dict]:
        commit = self._resolve(repo, revision)
        dirs = self._dirs_of(commit.files)
        out = []
        for raw in paths:
            path = str(raw).strip("/")
            if path in commit.files or path in dirs:
                out.append(self._entry(repo, commit, path, expand))
        return out

    def api_refs(self, repo: Repo, include_prs: bool) -> dict:
        refs = {
            "branches": [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in sorted(repo.branches.items())
            ],
            "converts": [],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in sorted(repo.tags.items())],
        }
        if include_prs:
            refs["pullRequests"] = []
        return refs

    def api_commits(self, repo: Repo, revision: str) -> list[dict]:
        self._resolve(repo, revision)
        return [
            {
                "id": c.sha,
                "title": c.title,
                "message": c.message,
                "date": c.date,
                "authors": [{"user": a} for a in c.authors],
            }
            for c in self.commits(repo.repo_id, repo.repo_type, revision)
        ]

    def api_branch_create(self, repo: Repo, branch: str, body: dict, exist_ok: bool = False) -> dict:
        if not branch or branch.startswith(("refs/", "/")) or _SHA1_RE.match(branch) or ".." in branch or " " in branch:
            raise HubError(400, f"Invalid branch name {branch!r}")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        starting_point = body.get("startingPoint") or "main"
        repo.branches[branch] = self._resolve(repo, starting_point).sha
        return {}

    def api_branch_delete(self, repo: Repo, branch: str) -> dict:
        if branch == "main":
            raise HubError(403, "Cannot delete the default branch")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        del repo.branches[branch]
        return {}

    def api_tag_create(self, repo: Repo, revision: str, body: dict) -> dict:
        tag = body.get("tag")
        if not isinstance(tag, str) or not tag or tag.startswith("refs/") or " " in tag:
            raise HubError(400, f"Invalid tag name {tag!r}")
        if tag in repo.tags:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        repo.tags[tag] = self._resolve(repo, revision).sha
        return {}

    def api_tag_delete(self, repo: Repo, tag: str) -> dict:
        if tag not in repo.tags:
            raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
        del repo.tags[tag]
        return {}

    def api_preupload(self, repo: Repo, revision: str, body: Any) -> dict:
        commit = self._resolve(repo, revision)
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list) or not files:
            raise HubError(400, "preupload: 'files' must be a non-empty list")
        git_ignore = body.get("gitIgnore")
        if git_ignore is None and ".gitignore" in commit.files:
            git_ignore = commit.files[".gitignore"].content.decode("utf-8", "replace")
        ignore_patterns = git_ignore.splitlines() if isinstance(git_ignore, str) else []
        out = []
        for item in files:
            if not isinstance(item, dict):
                raise HubError(400, "preupload: each file must be an object")
            path = _validate_path_in_repo(item.get("path"))
            size = item.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise HubError(400, f"preupload: invalid size for {path!r}")
            try:
                sample = base64.b64decode(item.get("sample") or "", validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise HubError(400, f"preupload: invalid base64 sample for {path!r}") from None
            existing = commit.files.get(path)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if self._should_be_lfs(path, size, sample, commit.files) else "regular",
                    "shouldIgnore": _matches_any(path, ignore_patterns),
                    "oid": existing.etag if existing is not None else None,
                }
            )
        return {"files": out, "commitOid": commit.sha}

    def api_commit(self, repo: Repo, revision: str, body: bytes, content_type: str) -> dict:
        branch = self._branch_of(repo, revision)
        if "ndjson" not in content_type:
            raise HubError(400, f"commit: expected an application/x-ndjson payload, got {content_type!r}")
        try:
            lines = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HubError(400, f"commit: malformed NDJSON payload ({exc})") from None
        for line in lines:
            if not (
                isinstance(line, dict) and isinstance(line.get("key"), str) and isinstance(line.get("value"), dict)
            ):
                raise HubError(400, "commit: every NDJSON line must be {'key': str, 'value': object}")
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, "commit: the first NDJSON line must be the 'header'")
        header = lines[0]["value"]
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise HubError(400, "commit: header.summary must be a non-empty string")
        description = header.get("description") or ""
        head = repo.commits[repo.branches[branch]]
        parent = header.get("parentCommit")
        if parent is not None and parent != head.sha:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")

        tree = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "header":
                raise HubError(400, "commit: only one 'header' line is allowed")
            path = _validate_path_in_repo(value.get("path"))
            if key == "file":
                if value.get("encoding", "base64") != "base64" or not isinstance(value.get("content"), str):
                    raise HubError(400, f"commit: 'file' {path!r} needs base64 'content'")
                try:
                    content = base64.b64decode(value["content"], validate=True)
                except binascii.Error:
                    raise HubError(400, f"commit: invalid base64 content for {path!r}") from None
                tree[path] = Blob.make(content, lfs=False)
            elif key == "lfsFile":
                oid, size = value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not _SHA256_RE.match(oid):
                    raise HubError(400, f"commit: 'lfsFile' {path!r} needs a sha256 'oid'")
                if oid not in repo.lfs_objects:
                    raise HubError(400, f"commit: LFS object {oid} for {path!r} was never uploaded to this repo")
                content = repo.lfs_objects[oid]
                if size is not None and size != len(content):
                    raise HubError(400, f"commit: 'lfsFile' {path!r} declares size {size}, object has {len(content)}")
                tree[path] = Blob.make(content, lfs=True)
            elif key == "deletedFile":
                if path not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del tree[path]
            elif key == "deletedFolder":
                doomed = [p for p in tree if p.startswith(path + "/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del tree[p]
            else:
                raise HubError(400, f"commit: unknown operation {key!r}")
        # regular files that belong in LFS are refused, judged against the tree being committed
        for path, blob in tree.items():
            if blob.lfs or blob.size == 0 or head.files.get(path) is blob:
                continue
            if self._should_be_lfs(path, blob.size, blob.content[:512], tree):
                raise HubError(
                    400,
                    f"commit: {path!r} ({blob.size} bytes) must be uploaded with LFS (binary, too large,"
                    " or tracked by .gitattributes)",
                )
        if repo.repo_type == "space" and "README.md" in tree and tree["README.md"] is not head.files.get("README.md"):
            self._check_space_readme(tree["README.md"].content)
        if {p: (b.lfs, b.git_oid) for p, b in tree.items()} == {p: (b.lfs, b.git_oid) for p, b in head.files.items()}:
            sha = head.sha  # nothing changed: no new commit, answer the current head
        else:
            sha = self._new_commit(repo, head.sha, tree, summary, description).sha
            repo.branches[branch] = sha
        return {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{sha}",
            "commitMessage": summary,
            "hookOutput": "",
            "pullRequestUrl": None,
        }

    def _check_space_readme(self, content: bytes) -> None:
        """A Space's README.md carries its configuration: YAML front matter with a known ``sdk`` (and, for
        gradio / streamlit, an ``sdk_version``). The Hub refuses a push whose Space metadata is invalid;
        this checks those fields only."""
        meta = self._card_data(content)
        if meta is None:
            raise HubError(400, "Invalid metadata in README.md: a Space's README needs YAML front matter with its sdk")
        sdk = meta.get("sdk")
        if sdk not in SPACE_SDKS:
            raise HubError(400, f"Invalid metadata in README.md: \"sdk\" must be one of {', '.join(SPACE_SDKS)} (got {sdk!r})")
        if sdk == "gradio" and not isinstance(meta.get("sdk_version"), str):
            raise HubError(400, "Invalid metadata in README.md: \"sdk_version\" must be a version string such as \"6.0.0\"")
        app_file = meta.get("app_file")
        if app_file is not None and not isinstance(app_file, str):
            raise HubError(400, "Invalid metadata in README.md: \"app_file\" must be a path")

    def api_lfs_batch(self, repo: Repo, body: Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise HubError(400, "LFS batch: 'objects' must be a list")
        if body.get("operation") != "upload":
            raise HubError(422, "LFS batch: only the 'upload' operation is supported")
        transfers = body.get("transfers") or ["basic"]
        if "basic" not in transfers:
            raise HubError(422, "LFS batch: only the 'basic' transfer is supported")
        if body.get("hash_algo", "sha256") != "sha256":
            raise HubError(422, "LFS batch: only sha256 is supported")
        objects = []
        for obj in body["objects"]:
            oid = obj.get("oid") if isinstance(obj, dict) else None
            size = obj.get("size") if isinstance(obj, dict) else None
            if not (isinstance(oid, str) and _SHA256_RE.match(oid)) or not isinstance(size, int) or size < 0:
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            if oid in repo.lfs_objects and len(repo.lfs_objects[oid]) == size:
                objects.append({"oid": oid, "size": size, "authenticated": True})  # already there: no actions
                continue
            ticket = secrets.token_hex(16)
            self._tickets[ticket] = ((repo.repo_type, repo.repo_id), oid, size)
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{self.endpoint}/__fake_lfs/upload/{ticket}", "header": {}},
                        "verify": {
                            "href": f"{self.endpoint}/{repo.url_path}.git/info/lfs/objects/verify",
                            "header": {},
                        },
                    },
                }
            )
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def api_lfs_upload(self, ticket: str, body: bytes) -> None:
        if ticket not in self._tickets:
            raise HubError(403, "Invalid or expired upload URL")
        repo_key, oid, size = self._tickets[ticket]
        repo = self._get_repo(*repo_key)
        if len(body) != size:
            raise HubError(400, f"LFS upload: got {len(body)} bytes, batch declared {size}")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"LFS upload: content sha256 does not match the declared oid {oid}")
        repo.lfs_objects[oid] = body
        del self._tickets[ticket]

    def api_lfs_verify(self, repo: Repo, body: Any) -> dict:
        oid = body.get("oid") if isinstance(body, dict) else None
        size = body.get("size") if isinstance(body, dict) else None
        if oid not in repo.lfs_objects or len(repo.lfs_objects[oid]) != size:
            raise HubError(404, f"LFS object {oid} not found (or size differs)")
        return {}


# ====================================================================== HTTP layer
_API_REPO_RE = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(/.*)?$")
_RESOLVE_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_LFS_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+?)\.git/info/lfs/objects/(batch|verify)$")
_LFS_UPLOAD_RE = re.compile(r"^/__fake_lfs/upload/([0-9a-f]+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    hub: FakeHub  # set on the subclass built by FakeHubServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr; requests are in hub.requests
        pass

    # -- plumbing
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _auth_ok(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.hub.token}"

    def _require_auth(self) -> None:
        auth = self.headers.get("Authorization")
        if not auth:
            raise HubError(401, "Invalid username or password.")
        if auth != f"Bearer {self.hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header")

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              content_type: str = "application/json; charset=utf-8", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("X-Request-Id", secrets.token_hex(8))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self._status = status

    def _send_json(self, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None,
                   content_type: str = "application/json; charset=utf-8") -> None:
        self._send(status, json.dumps(obj).encode(), headers, content_type)

    def _send_error(self, err: HubError) -> None:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message.encode("ascii", "replace").decode().replace("\n", " ")
        body: dict[str, Any] = {"error": err.message}
        if err.status == 409 and "X-Repo-Url" in headers:
            body["url"] = headers.pop("X-Repo-Url")
        self._send_json(body, err.status, headers)

    def _handle(self) -> None:
        self._status = 0
        hub = self.hub
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
            try:
                self._route(split.path, query, body)
            except HubError as err:
                self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug here must be loud in the test, not a hang
            hub.server_errors.append(traceback.format_exc())
            try:
                self._send_json({"error": "fake hub crashed, see hub.server_errors"}, 500)
            except OSError:
                self.close_connection = True
        finally:
            with hub._lock:
                hub.requests.append((self.command, self.path, self._status))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

    @staticmethod
    def _flag(query: Mapping[str, list[str]], name: str) -> bool:
        values = query.get(name) or query.get(name + "[]") or []
        return any(v.lower() in ("1", "true", "yes") for v in values)

    def _body_json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HubError(400, "Request body is not valid JSON") from None

    # -- routing
    def _route(self, path: str, query: Mapping[str, list[str]], body: bytes) -> None:
        hub, method = self.hub, self.command
        if path == "/api/whoami-v2" and method == "GET":
            hub.maybe_fail("whoami")
            self._require_auth()
            return self._send_json(hub.whoami())
        if path == "/api/validate-yaml" and method == "POST":
            hub.maybe_fail("validate_yaml")
            status, answer = hub.api_validate_yaml(self._body_json(body))
            return self._send_json(answer, status)
        if path in ("/api/repos/create", "/api/repos/delete") and method == "POST":
            kind = "create_repo" if path.endswith("create") else "delete_repo"
            hub.maybe_fail(kind)
            self._require_auth()
            payload = self._body_json(body)
            if not isinstance(payload, dict):
                raise HubError(400, "Request body must be a JSON object")
            answer = hub.api_create_repo(payload) if kind == "create_repo" else hub.api_delete_repo(payload)
            return self._send_json(answer)

        match = _LFS_UPLOAD_RE.match(path)
        if match and method == "PUT":
            hub.maybe_fail("lfs_upload")
            with hub._lock:
                hub.api_lfs_upload(match.group(1), body)
            return self._send(200, b"", {"ETag": '"' + hashlib.md5(body).hexdigest() + '"'}, "text/plain")

        match = _LFS_RE.match(path)
        if match and method == "POST":
            plural, namespace, name, action = match.groups()
            repo_type = PLURAL_TO_TYPE.get(plural or "models", "model")
            hub.maybe_fail("lfs_batch" if action == "batch" else "lfs_verify")
            self._require_auth()
            with hub._lock:
                repo = hub._get_repo(repo_type, f"{unquote(namespace)}/{unquote(name)}")
                if action == "batch":
                    return self._send_json(hub.api_lfs_batch(repo, self._body_json(body)),
                                           content_type="application/vnd.git-lfs+json")
                return self._send_json(hub.api_lfs_verify(repo, self._body_json(body)))

        match = _API_REPO_RE.match(path)
        if match:
            plural, namespace, name, rest = match.groups()
            return self._route_api_repo(PLURAL_TO_TYPE[plural], f"{unquote(namespace)}/{unquote(name)}",
                                        rest or "", query, body)

        match = _RESOLVE_RE.match(path)
        if match and method in ("GET", "HEAD"):
            plural, namespace, name, revision, file_path = match.groups()
            repo_type = PLURAL_TO_TYPE.get(plural or "models", "model")
            return self._resolve_file(repo_type, f"{unquote(namespace)}/{unquote(name)}", unquote(revision),
                                      unquote(file_path))

        with hub._lock:
            hub.unhandled.append((method, self.path))
        raise HubError(404, f"Fake hub: no route for {method} {path}")

    def _route_api_repo(self, repo_type: str, repo_id: str, rest: str, query: Mapping[str, list[str]],
                        body: bytes) -> None:
        hub, method = self.hub, self.command
        namespace, _, name = repo_id.partition("/")
        if not (_NAME_RE.match(namespace) and _NAME_RE.match(name)):
            raise HubError(400, f"Invalid repo id {repo_id!r}")
        segments = rest.split("/")[1:] if rest else []
        action = segments[0] if segments else ""
        arg = unquote(segments[1]) if len(segments) > 1 else ""
        tail = "/".join(unquote(s) for s in segments[2:])
        routes = {
            ("GET", ""): "repo_info", ("GET", "revision"): "repo_info", ("GET", "tree"): "tree",
            ("POST", "paths-info"): "paths_info", ("GET", "refs"): "refs", ("GET", "commits"): "commits",
            ("POST", "preupload"): "preupload", ("POST", "commit"): "commit", ("POST", "branch"): "branch",
            ("DELETE", "branch"): "branch", ("POST", "tag"): "tag", ("DELETE", "tag"): "tag",
            ("PUT", "settings"): "repo_settings",
        }
        kind = routes.get((method, action))
        needs_arg = action in ("revision", "tree", "paths-info", "commits", "preupload", "commit", "branch", "tag")
        if kind is None or (needs_arg and not arg) or (tail and action != "tree"):
            with hub._lock:
                hub.unhandled.append((method, self.path))
            raise HubError(404, f"Fake hub: no route for {method} {self.path}")
        hub.maybe_fail(kind)
        writes = kind in ("preupload", "commit", "branch", "tag", "repo_settings")
        if writes:
            self._require_auth()
        with hub._lock:
            repo = hub._get_repo(repo_type, repo_id)
            hub._check_read_access(repo, self._auth_ok())
            if kind == "repo_info":
                info = hub.api_repo_info(repo, arg or "main", blobs=self._flag(query, "blobs"))
                return self._send_json(info)
            if kind == "tree":
                entries = hub.api_tree(repo, arg, tail, self._flag(query, "recursive"), self._flag(query, "expand"))
                return self._send_json(entries)
            if kind == "paths_info":
                paths, expand = self._paths_info_args(body)
                return self._send_json(hub.api_paths_info(repo, arg, paths, expand))
            if kind == "refs":
                return self._send_json(hub.api_refs(repo, self._flag(query, "include_prs")))
            if kind == "commits":
                return self._send_json(hub.api_commits(repo, arg))
            if self._flag(query, "create_pr"):
                raise HubError(400, "Fake hub: pull requests (create_pr) are not supported")
            if kind == "preupload":
                return self._send_json(hub.api_preupload(repo, arg, self._body_json(body)))
            if kind == "commit":
                return self._send_json(hub.api_commit(repo, arg, body, self.headers.get("Content-Type", "")))
            if kind == "branch":
                if method == "POST":
                    return self._send_json(hub.api_branch_create(repo, arg, self._body_json(body)))
                return self._send_json(hub.api_branch_delete(repo, arg))
            if kind == "tag":
                if method == "POST":
                    return self._send_json(hub.api_tag_create(repo, arg, self._body_json(body)))
                return self._send_json(hub.api_tag_delete(repo, arg))
            return self._send_json(hub.api_settings(repo, self._body_json(body)))

    def _paths_info_args(self, body: bytes) -> tuple[list[str], bool]:
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = self._body_json(body)
            paths, expand = payload.get("paths"), payload.get("expand")
        else:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            paths, expand = form.get("paths"), (form.get("expand") or ["false"])[0]
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list):
            raise HubError(400, "paths-info: 'paths' is required")
        return paths, str(expand).lower() in ("1", "true")

    def _resolve_file(self, repo_type: str, repo_id: str, revision: str, file_path: str) -> None:
        hub = self.hub
        hub.maybe_fail("resolve")
        with hub._lock:
            repo = hub._get_repo(repo_type, repo_id)
            hub._check_read_access(repo, self._auth_ok())
            commit = hub._resolve(repo, revision)
            blob = commit.files.get(file_path)
        if blob is None:
            raise HubError(404, f"Entry not found: {file_path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{quote(file_path.rsplit("/", 1)[-1])}"',
        }
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(blob.size)
        data, status = blob.content, 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if match and (match.group(1) or match.group(2)):
                start_s, end_s = match.groups()
                size = len(data)
                if start_s:
                    start, end = int(start_s), min(int(end_s) if end_s else size - 1, size - 1)
                else:
                    start, end = max(size - int(end_s), 0), size - 1
                if start >= size or start > end:
                    raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
                data, status = data[start : end + 1], 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, data, headers, "application/octet-stream")


class FakeHubServer:
    """Serves a `FakeHub` on ``127.0.0.1``.

    The socket is bound in ``__init__`` (so ``url`` is known and the port reserved before anything imports
    `huggingface_hub`), and only listens once `start` is called; connecting before that is refused.
    Use as a context manager, or call `start`/`stop`.
    """

    def __init__(self, hub: FakeHub | None = None, host: str = "127.0.0.1", port: int = 0):
        self.hub = hub or FakeHub()
        handler = type("_BoundHandler", (_Handler,), {"hub": self.hub})
        self.httpd = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.allow_reuse_address = True
        self.httpd.server_bind()
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.hub.endpoint = self.url
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "FakeHubServer":
        if not self.running:
            self.httpd.server_activate()
            self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()

    def __enter__(self) -> FakeHub:
        self.start()
        return self.hub

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":  # manual debugging: python tests/hub_server.py [port]
    import sys

    with FakeHubServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as _hub:
        print(f"HF_ENDPOINT={_hub.endpoint} HF_TOKEN={_hub.token} HF_HUB_DISABLE_XET=1", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
