"""Tests of the loopback fake Hub (tests/hub_server.py) against the real huggingface_hub / datasets clients."""

import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys

import pytest
from huggingface_hub import (
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


# ---------------------------------------------------------------------------------------------- helpers
def _raw(hub, method, path, body=b"", headers=None, auth=True):
    """Send one raw request (stdlib only) and return (status, headers, body)."""
    host, port = hub.endpoint.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    all_headers = {"Authorization": f"Bearer {hub.token}"} if auth else {}
    all_headers.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=all_headers, encode_chunked=not isinstance(body, bytes))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _ndjson(*items):
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _header(summary="raw commit"):
    return {"key": "header", "value": {"summary": summary, "description": ""}}


def _file_line(path, content: bytes):
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}}


def _lfs_line(path, content: bytes):
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": hashlib.sha256(content).hexdigest(),
                                        "size": len(content)}}


def _post_commit(hub, repo_id, payload: bytes, repo_type="model", revision="main"):
    return _raw(hub, "POST", f"/api/{repo_type}s/{repo_id}/commit/{revision}", payload,
                {"Content-Type": "application/x-ndjson"})


def _lfs_batch(hub, repo_id, content: bytes):
    oid = hashlib.sha256(content).hexdigest()
    status, _, body = _raw(hub, "POST", f"/{repo_id}.git/info/lfs/objects/batch",
                           {"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                            "objects": [{"oid": oid, "size": len(content)}]})
    assert status == 200
    return json.loads(body)["objects"][0]


def _path_of(url):
    return "/" + url.split("//", 1)[1].split("/", 1)[1]


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "sub" / "notes.txt").write_text("hello hub\n")
    (folder / "weights.safetensors").write_bytes(os.urandom(4096))
    return folder


# ---------------------------------------------------------------------------------------------- push / pull
def test_upload_folder_roundtrip_lfs_and_regular(fake_hub, model_folder, tmp_path):
    api = HfApi()
    url = api.create_repo("org/model")
    assert url.repo_id == "org/model"
    initial = fake_hub.head("org/model")

    info = api.upload_folder(folder_path=model_folder, repo_id="org/model", commit_message="first upload")
    assert info.oid == fake_hub.head("org/model") != initial
    assert [c.title for c in fake_hub.commits("org/model")] == ["first upload", "initial commit"]
    # preupload answered "lfs" for *.safetensors (via .gitattributes): it went through batch + PUT
    assert fake_hub.file_info("org/model", "weights.safetensors").lfs
    assert not fake_hub.file_info("org/model", "config.json").lfs
    assert any(method == "PUT" and status == 200 for method, _, status in fake_hub.requests)
    assert fake_hub.files("org/model")["sub/notes.txt"] == b"hello hub\n"

    path = hf_hub_download("org/model", "weights.safetensors")
    assert open(path, "rb").read() == (model_folder / "weights.safetensors").read_bytes()
    snapshot = snapshot_download("org/model", local_dir=tmp_path / "snapshot")
    for name in ("config.json", "sub/notes.txt", "weights.safetensors"):
        assert (tmp_path / "snapshot" / name).read_bytes() == (model_folder / name).read_bytes()
    assert sorted(api.list_repo_files("org/model")) == [
        ".gitattributes", "config.json", "sub/notes.txt", "weights.safetensors"]
    assert str(snapshot) == str(tmp_path / "snapshot")

    # pushing the same folder again makes no commit (client drops unchanged files using preupload's oids)
    n_requests = len(fake_hub.requests)
    again = api.upload_folder(folder_path=model_folder, repo_id="org/model")
    assert again.oid == info.oid
    assert len(fake_hub.commits("org/model")) == 2
    assert not any("/commit/" in path for _, path, _ in fake_hub.requests[n_requests:])

    # a real change makes exactly one new commit, readable at the old sha and the new one
    (model_folder / "config.json").write_text('{"hidden_size": 16}')
    changed = api.upload_folder(folder_path=model_folder, repo_id="org/model")
    assert changed.oid != info.oid and len(fake_hub.commits("org/model")) == 3
    old = hf_hub_download("org/model", "config.json", revision=info.oid)
    assert open(old).read() == '{"hidden_size": 8}'
    assert open(hf_hub_download("org/model", "config.json")).read() == '{"hidden_size": 16}'
    assert not fake_hub.unhandled


def test_server_side_noop_commit_returns_head(fake_hub):
    fake_hub.seed("org/model", {"a.txt": b"same"})
    head, n_commits = fake_hub.head("org/model"), len(fake_hub.commits("org/model"))
    status, _, body = _post_commit(fake_hub, "org/model", _ndjson(_header(), _file_line("a.txt", b"same")))
    assert status == 200 and json.loads(body)["commitOid"] == head
    assert len(fake_hub.commits("org/model")) == n_commits


def test_branches_tags_and_revisions(fake_hub):
    api = HfApi()
    api.create_repo("org/model")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="org/model").oid
    api.create_branch("org/model", branch="dev")
    api.upload_file(path_or_fileobj=b"v2-dev", path_in_repo="a.txt", repo_id="org/model", revision="dev")
    api.create_tag("org/model", tag="v1.0", revision=first)
    assert fake_hub.head("org/model") == first
    assert fake_hub.files("org/model", revision="dev")["a.txt"] == b"v2-dev"
    assert open(hf_hub_download("org/model", "a.txt", revision="dev")).read() == "v2-dev"
    assert open(hf_hub_download("org/model", "a.txt", revision="v1.0")).read() == "v1"
    refs = api.list_repo_refs("org/model")
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first)]
    assert api.model_info("org/model", revision="dev").sha == fake_hub.head("org/model", revision="dev")
    # committing to something that is not a branch is refused
    status, headers, _ = _post_commit(fake_hub, "org/model", _ndjson(_header(), _file_line("b.txt", b"x")),
                                      revision=first)
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"


# ---------------------------------------------------------------------------------------------- errors
def test_not_found_errors(fake_hub):
    fake_hub.seed("org/model", {"a.txt": b"x"})
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "a.txt")
    with pytest.raises(RepositoryNotFoundError):  # a dataset repo is not a model repo
        hf_hub_download("org/model", "a.txt", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/model", "a.txt", revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/model", "missing.txt")
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/missing")

    for path, code in [
        ("/org/missing/resolve/main/a.txt", "RepoNotFound"),
        ("/org/model/resolve/nope/a.txt", "RevisionNotFound"),
        ("/org/model/resolve/main/missing.txt", "EntryNotFound"),
        ("/api/models/org/missing", "RepoNotFound"),
        ("/api/models/org/model/revision/nope", "RevisionNotFound"),
        ("/api/models/org/model/tree/main/nope", "EntryNotFound"),
    ]:
        status, headers, _ = _raw(fake_hub, "GET", path)
        assert (status, headers.get("X-Error-Code")) == (404, code), path

    # invalid repo ids -> 400 (huggingface_hub validates ids client side, so send raw requests)
    assert _raw(fake_hub, "GET", "/api/models/org/bad--name")[0] == 400
    assert _raw(fake_hub, "POST", "/api/repos/create", {"name": "bad name", "organization": "org"})[0] == 400
    assert _raw(fake_hub, "POST", "/api/repos/create", {"name": "ok", "organization": "o/rg"})[0] == 400
    # writes need the token
    status, _, _ = _raw(fake_hub, "POST", "/api/repos/create", {"name": "x", "organization": "org"}, auth=False)
    assert status == 401
    status, _, _ = _raw(fake_hub, "POST", "/api/repos/create", {"name": "x", "organization": "org"},
                        headers={"Authorization": "Bearer hf_wrong"})
    assert status == 401
    # an existing repo -> 409 with its url; create_repo(exist_ok=True) accepts it
    status, _, body = _raw(fake_hub, "POST", "/api/repos/create", {"name": "model", "organization": "org"})
    assert status == 409 and json.loads(body)["url"].endswith("/org/model")
    assert HfApi().create_repo("org/model", exist_ok=True).repo_id == "org/model"


def test_range_requests(fake_hub):
    fake_hub.seed("org/model", {"data.bin": bytes(range(100))})
    status, headers, body = _raw(fake_hub, "GET", "/org/model/resolve/main/data.bin", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == bytes(range(10, 20)) and headers["Content-Range"] == "bytes 10-19/100"
    status, _, body = _raw(fake_hub, "GET", "/org/model/resolve/main/data.bin", headers={"Range": "bytes=-5"})
    assert (status, body) == (206, bytes(range(95, 100)))
    assert _raw(fake_hub, "GET", "/org/model/resolve/main/data.bin", headers={"Range": "bytes=200-"})[0] == 416
    status, headers, body = _raw(fake_hub, "HEAD", "/org/model/resolve/main/data.bin")
    assert status == 200 and body == b"" and headers["Content-Length"] == "100"
    assert headers["X-Linked-Etag"].strip('"') == hashlib.sha256(bytes(range(100))).hexdigest()
    assert headers["X-Repo-Commit"] == fake_hub.head("org/model")


_BINARY = b"\x00\x01binary"
_UPLOADED = b"uploaded lfs object"
_MALFORMED = {
    "not ndjson": (b"{not json\n", 400),
    "missing header": (_ndjson(_file_line("a.txt", b"x")), 400),
    "empty summary": (_ndjson({"key": "header", "value": {"summary": ""}}, _file_line("a.txt", b"x")), 400),
    "bad base64": (_ndjson(_header(), {"key": "file", "value": {"path": "a.txt", "content": "@@not-b64@@",
                                                                "encoding": "base64"}}), 400),
    "lfsFile never uploaded": (_ndjson(_header(), _lfs_line("w.safetensors", b"never sent")), 400),
    "lfsFile wrong size": (_ndjson(_header(), {"key": "lfsFile", "value": {
        "path": "w.safetensors", "algo": "sha256", "oid": hashlib.sha256(_UPLOADED).hexdigest(), "size": 3}}), 400),
    "unknown operation": (_ndjson(_header(), {"key": "renameFile", "value": {"path": "a.txt"}}), 400),
    "path escapes repo": (_ndjson(_header(), _file_line("../a.txt", b"x")), 400),
    "binary as regular file": (_ndjson(_header(), _file_line("blob.dat", _BINARY)), 400),
    "safetensors as regular file": (_ndjson(_header(), _file_line("w.safetensors", b"text")), 400),
    "delete missing file": (_ndjson(_header(), {"key": "deletedFile", "value": {"path": "nope.txt"}}), 404),
    "stale parentCommit": (_ndjson({"key": "header", "value": {"summary": "s", "parentCommit": "0" * 40}},
                                   _file_line("a.txt", b"x")), 412),
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_malformed_commit_payload_rejected(fake_hub, case):
    payload, expected_status = _MALFORMED[case]
    fake_hub.seed("org/model", {"a.txt": b"original"})
    # an object that *was* uploaded, so "wrong size" is about the size and nothing else
    action = _lfs_batch(fake_hub, "org/model", _UPLOADED)
    assert _raw(fake_hub, "PUT", _path_of(action["actions"]["upload"]["href"]), _UPLOADED, auth=False)[0] == 200
    head, n_commits = fake_hub.head("org/model"), len(fake_hub.commits("org/model"))

    status, _, _ = _post_commit(fake_hub, "org/model", payload)
    assert status == expected_status
    assert fake_hub.head("org/model") == head and len(fake_hub.commits("org/model")) == n_commits
    assert fake_hub.files("org/model")["a.txt"] == b"original"


def test_lfs_put_checks_sha256_and_size(fake_hub):
    fake_hub.create_repo("org/model")
    content = b"real weights " * 100
    action = _lfs_batch(fake_hub, "org/model", content)
    upload = _path_of(action["actions"]["upload"]["href"])
    verify = _path_of(action["actions"]["verify"]["href"])
    oid = action["oid"]

    tampered = b"fake weights " * 100  # same size, other bytes
    assert _raw(fake_hub, "PUT", upload, tampered, auth=False)[0] == 400
    assert _raw(fake_hub, "PUT", upload, content[:-1], auth=False)[0] == 400
    assert _raw(fake_hub, "POST", verify, {"oid": oid, "size": len(content)})[0] == 404
    assert _post_commit(fake_hub, "org/model", _ndjson(_header(), _lfs_line("w.safetensors", content)))[0] == 400

    # a chunked (Transfer-Encoding) body is checked the same way, and accepted when right
    assert _raw(fake_hub, "PUT", upload, iter([tampered[:600], tampered[600:]]), auth=False)[0] == 400
    assert _raw(fake_hub, "PUT", upload, iter([content[:600], content[600:]]), auth=False)[0] == 200
    assert _raw(fake_hub, "POST", verify, {"oid": oid, "size": len(content)})[0] == 200
    assert _lfs_batch(fake_hub, "org/model", content).get("actions") is None  # already stored: nothing to do
    assert _raw(fake_hub, "PUT", upload, content, auth=False)[0] == 403  # pre-signed URL used up
    status, _, body = _post_commit(fake_hub, "org/model", _ndjson(_header(), _lfs_line("w.safetensors", content)))
    assert status == 200 and json.loads(body)["commitOid"] == fake_hub.head("org/model")
    assert fake_hub.files("org/model")["w.safetensors"] == content
    # content matching its oid but not the size declared to the batch endpoint is refused too
    other = b"other weights"
    status, _, body = _raw(fake_hub, "POST", "/org/model.git/info/lfs/objects/batch", {
        "operation": "upload", "objects": [{"oid": hashlib.sha256(other).hexdigest(), "size": len(other) + 1}]})
    bad_size_upload = _path_of(json.loads(body)["objects"][0]["actions"]["upload"]["href"])
    assert _raw(fake_hub, "PUT", bad_size_upload, other, auth=False)[0] == 400
    # invalid oids are reported per object, as the LFS batch API does
    status, _, body = _raw(fake_hub, "POST", "/org/model.git/info/lfs/objects/batch",
                           {"operation": "upload", "objects": [{"oid": "xyz", "size": 1}]})
    assert status == 200 and json.loads(body)["objects"][0]["error"]["code"] == 422


# ---------------------------------------------------------------------------------------------- failure injection
def test_injected_commit_failure_leaves_previous_commit(fake_hub, model_folder):
    api = HfApi()
    api.create_repo("org/model")
    first = api.upload_folder(folder_path=model_folder, repo_id="org/model").oid
    (model_folder / "config.json").write_text('{"hidden_size": 32}')

    fake_hub.fail_next("commit", status=500)
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.upload_folder(folder_path=model_folder, repo_id="org/model")
    assert excinfo.value.response.status_code == 500
    assert fake_hub.head("org/model") == first and len(fake_hub.commits("org/model")) == 2
    assert fake_hub.files("org/model")["config.json"] == b'{"hidden_size": 8}'

    # the next push goes through and makes exactly one commit
    second = api.upload_folder(folder_path=model_folder, repo_id="org/model").oid
    assert second != first and len(fake_hub.commits("org/model")) == 3


def test_injected_lfs_upload_failure_makes_no_commit(fake_hub, model_folder):
    api = HfApi()
    api.create_repo("org/model")
    head = fake_hub.head("org/model")
    # 5xx would be retried by huggingface_hub with 1+2+4+8+8 s of backoff: use a status it does not retry
    fake_hub.fail_next("lfs_upload", status=403)
    with pytest.raises(Exception) as excinfo:
        api.upload_folder(folder_path=model_folder, repo_id="org/model")
    causes = [excinfo.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(isinstance(c, HfHubHTTPError) and c.response.status_code == 403 for c in causes)
    assert fake_hub.head("org/model") == head
    assert not any("/commit/" in path for _, path, _ in fake_hub.requests)
    assert fake_hub.pending_failures("lfs_upload") == 0


def test_fail_next_arguments_are_checked(fake_hub):
    with pytest.raises(ValueError, match="Unknown failure kind"):
        fake_hub.fail_next("comit")
    with pytest.raises(ValueError):
        fake_hub.fail_next("commit", times=0)
    fake_hub.fail_next("resolve", times=2, status=503)
    fake_hub.seed("org/model", {"a.txt": b"x"})
    assert [_raw(fake_hub, "GET", "/org/model/resolve/main/a.txt")[0] for _ in range(3)] == [503, 503, 200]


# ---------------------------------------------------------------------------------------------- other clients
def test_dataset_push_to_hub_then_stream(fake_hub):
    datasets = pytest.importorskip("datasets")
    data = {"video_id": ["v1", "v2", "v3"], "duration": [1.5, 2.0, 3.25]}
    datasets.Dataset.from_dict(data).push_to_hub("org/ds")
    files = fake_hub.files("org/ds", repo_type="dataset")
    parquet = [p for p in files if p.endswith(".parquet")]
    assert parquet and all(fake_hub.file_info("org/ds", p, repo_type="dataset").lfs for p in parquet)
    assert "README.md" in files
    n_commits = len(fake_hub.commits("org/ds", repo_type="dataset"))

    rows = list(datasets.load_dataset("org/ds", split="train", streaming=True))
    assert rows == [{"video_id": v, "duration": d} for v, d in zip(data["video_id"], data["duration"])]

    datasets.Dataset.from_dict(data).push_to_hub("org/ds")  # same data: no new commit
    assert len(fake_hub.commits("org/ds", repo_type="dataset")) == n_commits
    assert not fake_hub.unhandled


def test_transformers_push_and_from_pretrained(fake_hub):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    config = transformers.BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=16)
    model = transformers.BertModel(config)
    model.push_to_hub("org/tiny-bert")
    assert fake_hub.file_info("org/tiny-bert", "model.safetensors").lfs
    loaded = transformers.AutoModel.from_pretrained("org/tiny-bert")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_fresh_subprocess_uses_same_server(fake_hub):
    fake_hub.seed("org/model", {"hello.txt": b"from the fake hub"})
    code = (
        "from huggingface_hub import hf_hub_download\n"
        "print(open(hf_hub_download('org/model', 'hello.txt')).read())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from the fake hub"
    assert any(path.endswith("/hello.txt") for _, path, _ in fake_hub.requests)


def test_spaces_need_an_sdk_and_valid_space_metadata(fake_hub):
    api = HfApi(endpoint=fake_hub.endpoint, token=fake_hub.token)
    status, _, body = _raw(fake_hub, "POST", "/api/repos/create", {"name": "demo", "organization": "org", "type": "space"})
    assert status == 400 and b"sdk" in body and not fake_hub.repo_exists("org/demo", "space")
    api.create_repo("org/demo", repo_type="space", space_sdk="gradio")
    assert api.space_info("org/demo").sdk == "gradio"
    good = b'---\nsdk: gradio\nsdk_version: "6.0.0"\napp_file: app.py\n---\n# demo\n'
    api.create_commit("org/demo", repo_type="space", commit_message="ok",
                      operations=[_op("README.md", good), _op("app.py", b"print(1)\n")])
    head = fake_hub.head("org/demo", "space")
    for bad, why in ((b"# no metadata\n", b"front matter"), (b"---\nsdk: flask\n---\n", b"sdk"),
                     (b"---\nsdk: gradio\nsdk_version: 6.0\n---\n", b"sdk_version")):
        with pytest.raises(HfHubHTTPError) as info:
            api.create_commit("org/demo", repo_type="space", commit_message="bad", operations=[_op("README.md", bad)])
        assert why in info.value.response.content
        assert fake_hub.head("org/demo", "space") == head
    # models are not held to the Space rules
    api.create_repo("org/model")
    api.create_commit("org/model", commit_message="card", operations=[_op("README.md", b"# no metadata\n")])


def _op(path, content):
    from huggingface_hub import CommitOperationAdd

    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)
