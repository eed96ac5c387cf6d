"""gs:// and s3:// for real in tests: gcp-storage-emulator and moto's S3 server on 127.0.0.1.

Fixtures (session-scoped; import them into a conftest.py: `from remote_storage import gcs_emulator,
s3_emulator  # noqa: F401`):

    gcs_emulator -> Emulator    a GCS JSON + XML API server with a fresh bucket
    s3_emulator  -> Emulator    moto's S3 with a fresh bucket

Each `Emulator` gives, for its one bucket:

    .url(path)            "gs://BUCKET/path" / "s3://BUCKET/path"
    .fsspec_options       storage options for fsspec.open / url_to_fs (gcsfs, s3fs)
    .delta_options        storage options for deltalake (delta-rs' object_store)
    .env                  the same as environment variables, for subprocesses (Beam workers, the CLI)
    .environ()            a context manager that sets .env in os.environ for its duration

Each emulator runs in its own subprocess, binds port 0 and prints the port, so there is no port race;
the fixture stops it (terminate, then kill) at the end of the session. What each server needed:

- **GCS**: gcp-storage-emulator speaks the JSON API only, and ignores preconditions: a second
  `ifGenerationMatch=0` upload overwrites the first (HTTP 200), an `ifGenerationMatch` delete of the
  wrong generation deletes. delta-rs (object_store) speaks GCS's XML API (`GET /BUCKET?list-type=2`,
  `HEAD`/`DELETE /BUCKET/KEY`, `PUT` with `x-goog-if-generation-match` / `x-goog-copy-source`), which
  the emulator answers with 501 (as it does XML multipart uploads, which delta-rs uses for files over
  5 MiB). And gcsfs's `mv` calls `objects.moveTo`, also 501, which gcsfs retries for about 30 s
  before it copies. The handler made by `_gcs_handler_class` adds exactly these to the emulator's
  own request handler, on the emulator's own storage: generation preconditions (`ifGenerationMatch`
  on uploads, deletes, copies and moves; `x-goog-if-generation-match` on XML puts and deletes),
  `moveTo`, and the XML object, listing and multipart calls object_store makes. The server stays the
  emulator's single-threaded `http.server`, so each check-then-write is atomic, as on GCS.
- **S3**: moto checks `If-None-Match` / `If-Match` (put, delete) in the request handler, before
  the write, without a lock; its threaded server can therefore let two conditional creates both
  succeed. It runs here single-threaded (werkzeug `make_server(threaded=False)`), which makes each
  conditional write atomic, as on S3.

Run `python tests/remote_storage.py gcs|s3` to start one by hand; it prints its port.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

# gcsfs picks its filesystem class when it is imported: with this unset it takes the "extended" one,
# whose bucket-type check asks Google's storage-control API and stalls 60 s without it.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

HOST = "127.0.0.1"
S3_KEY = "testing"  # moto accepts any credentials
S3_REGION = "us-east-1"


@dataclass
class Emulator:
    scheme: str  # "gs" or "s3"
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    fsspec_options: dict = field(default_factory=dict)
    delta_options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    started_s: float = 0.0  # start-up time: process start to bucket ready

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{path.lstrip('/')}"

    def fs(self):
        import fsspec

        return fsspec.filesystem(self.scheme, **self.fsspec_options)

    @contextlib.contextmanager
    def environ(self):
        """Set `.env` in os.environ (and fsspec's config, read at its import) for the block."""
        import fsspec.config

        saved = {k: os.environ.get(k) for k in self.env}
        saved_conf = {p: dict(fsspec.config.conf.get(p, {})) for p in ("gs", "gcs", "s3")}
        os.environ.update(self.env)
        fsspec.config.set_conf_env(fsspec.config.conf)
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            for p, conf in saved_conf.items():
                if conf:
                    fsspec.config.conf[p] = conf
                else:
                    fsspec.config.conf.pop(p, None)


def race(n: int, target) -> list:
    """Run target(i) for i < n in n threads released at once; each result, or the exception it raised."""
    import threading

    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as e:  # noqa: BLE001 - returned to the test, which asserts on it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -------------------------------------------------------------------------- process handling


def _start(kind: str) -> tuple[subprocess.Popen, int]:
    import tempfile

    # in its own scratch folder: the emulators keep nothing on disk, but must not litter the checkout
    # stdin stays open while this process lives: the server exits when it closes, even after a crash
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tempfile.gettempdir())
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        _stop(proc)
        raise RuntimeError(f"the {kind} emulator did not start (said {line!r})")
    return proc, int(line)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pipe in (proc.stdin, proc.stdout):
        if pipe:
            pipe.close()


def _plain_gcsfs() -> None:
    """Where gcsfs was imported before the setting above, register its plain filesystem for gs://."""
    import fsspec
    import gcsfs
    import gcsfs.core

    if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:
        for protocol in ("gs", "gcs"):
            fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)


def start_gcs() -> tuple[subprocess.Popen, Emulator]:
    t0 = time.monotonic()
    _plain_gcsfs()
    proc, port = _start("gcs")
    endpoint = f"http://{HOST}:{port}"
    bucket = f"reelbeam-{uuid.uuid4().hex[:8]}"
    import urllib.request

    req = urllib.request.Request(f"{endpoint}/storage/v1/b", data=json.dumps({"name": bucket}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    sa_key = json.dumps({"gcs_base_url": endpoint, "disable_oauth": True, "client_email": "", "private_key": "",
                         "private_key_id": ""})
    emulator = Emulator(
        "gs", endpoint, bucket,
        # token "anon": no credential lookup (google-auth would probe the GCE metadata server)
        fsspec_options={"endpoint_url": endpoint, "token": "anon"},
        # delta-rs: a service-account key naming the endpoint, with OAuth off. (google_base_url alone
        # reaches the emulator too, but then object_store fetches a token from the GCE metadata server.)
        delta_options={"google_service_account_key": sa_key, "allow_http": "true"},
        env={
            "STORAGE_EMULATOR_HOST": endpoint,  # gcsfs (and google-cloud-storage)
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "FSSPEC_GS_TOKEN": "anon", "FSSPEC_GCS_TOKEN": "anon",  # fsspec's env config -> gcsfs token
            "NO_GCE_CHECK": "true",  # google-auth: never probe the metadata server
            "GOOGLE_SERVICE_ACCOUNT_KEY": sa_key,  # delta-rs (object_store's GoogleCloudStorageBuilder::from_env)
        },
    )
    emulator.started_s = time.monotonic() - t0
    return proc, emulator


def start_s3() -> tuple[subprocess.Popen, Emulator]:
    t0 = time.monotonic()
    proc, port = _start("s3")
    endpoint = f"http://{HOST}:{port}"
    bucket = f"reelbeam-{uuid.uuid4().hex[:8]}"
    import urllib.request

    # an unsigned CreateBucket is enough for moto, and spares this process importing botocore
    req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential={S3_KEY}/20260101/{S3_REGION}/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    urllib.request.urlopen(req, timeout=30).read()
    emulator = Emulator(
        "s3", endpoint, bucket,
        fsspec_options={"endpoint_url": endpoint, "key": S3_KEY, "secret": S3_KEY,
                        "client_kwargs": {"region_name": S3_REGION}},
        # No AWS_S3_ALLOW_UNSAFE_RENAME and no locking provider: delta-rs then commits with
        # If-None-Match: * (conditional put), which moto honours, so concurrent commits collide.
        delta_options={"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": S3_REGION,
                       "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY},
        env={
            "AWS_ENDPOINT_URL": endpoint,  # botocore >= 1.31 (s3fs) and delta-rs
            "AWS_ALLOW_HTTP": "true",  # delta-rs
            "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY,
            "AWS_REGION": S3_REGION, "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",  # botocore: never probe the instance metadata service
        },
    )
    emulator.started_s = time.monotonic() - t0
    return proc, emulator


try:
    import pytest
except ImportError:  # run as a script: the servers need no pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def gcs_emulator():
        proc, emulator = start_gcs()
        try:
            yield emulator
        finally:
            _stop(proc)

    @pytest.fixture(scope="session")
    def s3_emulator():
        proc, emulator = start_s3()
        try:
            yield emulator
        finally:
            _stop(proc)


# ------------------------------------------------------------------------------------ servers


def serve_s3() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    server = make_server(HOST, 0, DomainDispatcherApplication(create_backend_app), threaded=False)
    print(server.server_port, flush=True)
    server.serve_forever()


def serve_gcs() -> None:
    import logging

    from gcp_storage_emulator import server

    logging.disable(logging.CRITICAL)
    server.RequestHandler = _gcs_handler_class()  # APIThread builds its HTTPServer with this name
    srv = server.create_server(HOST, 0, in_memory=True)
    srv.start()
    print(srv._api._httpd.server_address[1], flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        srv.stop()


def _gcs_handler_class():
    """The emulator's request handler plus generation preconditions, moveTo and the XML API."""
    import email.utils
    import hashlib
    import io
    from datetime import datetime
    from email.parser import BytesParser
    from urllib.parse import parse_qs, unquote, urlparse
    from xml.etree import ElementTree
    from xml.sax.saxutils import escape

    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    json_prefixes = ("/storage/", "/upload/", "/download/", "/batch/", "/b/")

    class Handler(server.RequestHandler):
        def _send(self, status, body=b"", headers=None, content_type=None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if content_type:
                self.send_header("Content-Type", content_type)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _json_error(self, status, message):
            self._send(status, json.dumps({"error": {"code": status, "message": message}}).encode(),
                       content_type="application/json")

        def _xml_error(self, status, code, message=""):
            body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>{escape(message)}</Message></Error>").encode()
            self._send(status, body, content_type="application/xml")

        def _generation(self, bucket, name):
            try:
                return str(self.storage.get_file_obj(bucket, name)["generation"])
            except NotFound:
                return None

        @staticmethod
        def _holds(current, wanted):
            """GCS semantics: generation 0 means 'does not exist'."""
            return current is None if str(wanted) == "0" else current == str(wanted)

        def _buffer_body(self) -> bytes:
            raw = server._read_raw_data(self) or b""
            self.rfile = io.BytesIO(raw)
            for h in ("Transfer-Encoding", "Content-Length"):
                del self.headers[h]
            self.headers["Content-Length"] = str(len(raw))
            return server._decode_raw_data(raw, self) or b""

        def _url(self):
            parsed = urlparse(self.path)
            return parsed.path, parse_qs(parsed.query, keep_blank_values=True)

        def _is_xml(self, path):
            return path not in ("/", "/wipe", "/b") and not path.startswith(json_prefixes)

        # ---------------------------------------------------------------- JSON API additions

        def do_POST(self):
            path, query = self._url()
            if self._is_xml(path):
                return self._xml_multipart_post(path, query)
            parts = path.split("/")
            # /storage/v1/b/{bucket}/o/{src}/moveTo/o/{dst}
            if len(parts) == 10 and parts[1:4] == ["storage", "v1", "b"] and parts[5] == "o" \
                    and parts[7:9] == ["moveTo", "o"]:
                return self._move(unquote(parts[4]), unquote(parts[6]), unquote(parts[9]), query)
            wanted = query.get("ifGenerationMatch", [None])[0]
            if wanted is not None and path.startswith("/upload/"):
                body = self._buffer_body()
                name = query.get("name", [None])[0] or self._upload_name(body)
                bucket = unquote(parts[-2])
                if name and not self._holds(self._generation(bucket, name), wanted):
                    return self._json_error(412, "conditionNotMet")
            elif wanted is not None and ("/copyTo/" in path or "/rewriteTo/" in path):
                dst = path.split("/copyTo/" if "/copyTo/" in path else "/rewriteTo/")[1].split("/")
                if not self._holds(self._generation(unquote(dst[1]), unquote("/".join(dst[3:]))), wanted):
                    self._buffer_body()
                    return self._json_error(412, "conditionNotMet")
            return super().do_POST()

        def _upload_name(self, body):
            ctype = self.headers.get("Content-Type", "")
            try:
                if ctype.startswith("multipart/"):
                    msg = BytesParser().parsebytes(b"Content-Type:" + ctype.encode() + b"\r\n" + body)
                    return json.loads(msg.get_payload()[0].get_payload()).get("name")
                if ctype.startswith("application/json") and body:
                    return json.loads(body).get("name")
            except (ValueError, IndexError, AttributeError):
                return None
            return None

        def do_DELETE(self):
            path, query = self._url()
            if self._is_xml(path):
                return self._xml_delete(path)
            wanted = query.get("ifGenerationMatch", [None])[0]
            if wanted is not None and "/o/" in path:
                bucket, name = path.split("/b/", 1)[1].split("/o/", 1)
                current = self._generation(unquote(bucket), unquote(name))
                if current is None:
                    return self._json_error(404, "Not Found")
                if not self._holds(current, wanted):
                    return self._json_error(412, "conditionNotMet")
            return super().do_DELETE()

        def _move(self, bucket, src, dst, query):
            try:
                source = self.storage.get_file_obj(bucket, src)
                data = self.storage.get_file(bucket, src)
            except NotFound:
                return self._json_error(404, "Not Found")
            wanted_src = query.get("ifSourceGenerationMatch", [None])[0]
            if wanted_src is not None and str(source["generation"]) != wanted_src:
                return self._json_error(412, "conditionNotMet")
            wanted = query.get("ifGenerationMatch", [None])[0]
            if wanted is not None and not self._holds(self._generation(bucket, dst), wanted):
                return self._json_error(412, "conditionNotMet")
            obj = self._store(bucket, dst, data, source.get("contentType"), source.get("metadata"))
            self.storage.delete_file(bucket, src)
            self._send(200, json.dumps(obj).encode(), content_type="application/json")

        def _store(self, bucket, name, data, content_type, metadata=None):
            base = f"http://{self.headers.get('Host') or '{}:{}'.format(*self.server.server_address[:2])}"
            extra = {"metadata": metadata} if metadata else None
            obj = objects._make_object_resource(base, bucket, name, content_type or "application/octet-stream",
                                                str(len(data)), extra)
            obj = objects._checksums(data, obj)
            self.storage.create_file(bucket, name, data, obj)
            return obj

        # ------------------------------------------------------------- XML API (object_store)

        def _split(self, path):
            bucket, _, key = path[1:].partition("/")
            return unquote(bucket), unquote(key)

        @staticmethod
        def _http_date(iso):
            t = datetime.fromisoformat(iso)
            return email.utils.format_datetime(t, usegmt=True)

        def _object_headers(self, obj):
            return {"ETag": f'"{obj.get("md5Hash") or obj["generation"]}"',
                    "Last-Modified": self._http_date(obj["updated"]),
                    "x-goog-generation": str(obj["generation"]),
                    "x-goog-metageneration": str(obj.get("metageneration", "1")),
                    "Accept-Ranges": "bytes"}

        def do_GET(self):
            path, query = self._url()
            if not self._is_xml(path):
                return super().do_GET()
            bucket, key = self._split(path)
            if not key:
                return self._xml_list(bucket, query)
            return self._xml_get(bucket, key, query)

        def do_HEAD(self):
            path, query = self._url()
            if not self._is_xml(path):
                return self._send(501)
            bucket, key = self._split(path)
            return self._xml_get(bucket, key, query)

        def _xml_get(self, bucket, key, query):
            try:
                obj = self.storage.get_file_obj(bucket, key)
                data = self.storage.get_file(bucket, key)
            except NotFound:
                return self._xml_error(404, "NoSuchKey", key)
            if query.get("generation") and query["generation"][0] != str(obj["generation"]):
                return self._xml_error(404, "NoSuchKey", key)
            headers = self._object_headers(obj)
            if_match, if_none = self.headers.get("If-Match"), self.headers.get("If-None-Match")
            if if_match and if_match not in ("*", headers["ETag"]):
                return self._xml_error(412, "PreconditionFailed", "If-Match")
            if if_none and if_none in ("*", headers["ETag"]):
                return self._send(304, headers=headers)
            ctype = obj.get("contentType") or "application/octet-stream"
            size = len(data)
            spec = (self.headers.get("Range") or "").strip()
            if spec.startswith("bytes=") and "," not in spec:
                first, _, last = spec[6:].partition("-")
                if first == "":
                    start, end = max(size - int(last), 0), size - 1
                else:
                    start, end = int(first), (min(int(last), size - 1) if last else size - 1)
                if start >= size or start > end:
                    return self._send(416, headers={"Content-Range": f"bytes */{size}"})
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                body = data[start:end + 1]
                return self._send(206, body, headers={**headers, "Content-Length": str(len(body))},
                                  content_type=ctype)
            return self._send(200, data, headers={**headers, "Content-Length": str(size)}, content_type=ctype)

        def _xml_list(self, bucket, query):
            q = {k: v[0] for k, v in query.items()}
            prefix, delimiter = q.get("prefix", ""), q.get("delimiter") or None
            try:
                files, prefixes = self.storage.get_file_list(bucket, prefix or None, delimiter, None)
            except NotFound:
                return self._xml_error(404, "NoSuchBucket", bucket)
            after = max(q.get("start-after", ""), q.get("continuation-token", ""))
            entries = sorted([(f["name"], f) for f in files] + [(p, None) for p in prefixes],
                             key=lambda e: e[0])
            entries = [e for e in entries if e[0] > after]
            limit = int(q.get("max-keys", 1000))
            page, more = entries[:limit], len(entries) > limit
            out = [f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult><Name>{escape(bucket)}</Name>",
                   f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>",
                   f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>"]
            for name, f in page:
                if f is None:
                    out.append(f"<CommonPrefixes><Prefix>{escape(name)}</Prefix></CommonPrefixes>")
                else:
                    modified = datetime.fromisoformat(f["updated"])
                    out.append(f"<Contents><Key>{escape(name)}</Key><Generation>{f['generation']}</Generation>"
                               f"<LastModified>{modified.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</LastModified>"
                               f"<ETag>\"{escape(f.get('md5Hash') or '')}\"</ETag><Size>{f['size']}</Size>"
                               "</Contents>")
            if more:
                out.append(f"<NextContinuationToken>{escape(page[-1][0])}</NextContinuationToken>")
            out.append("</ListBucketResult>")
            self._send(200, "".join(out).encode(), content_type="application/xml")

        def do_PUT(self):
            path, query = self._url()
            if not self._is_xml(path):
                return super().do_PUT()
            bucket, key = self._split(path)
            data = self._buffer_body()
            if "uploadId" in query:  # a part of a multipart upload
                upload = self._uploads().get(query["uploadId"][0])
                if upload is None:
                    return self._xml_error(404, "NoSuchUpload")
                etag = f'"{hashlib.md5(data).hexdigest()}"'
                upload["parts"][int(query["partNumber"][0])] = (etag, data)
                return self._send(200, headers={"ETag": etag})
            wanted = self.headers.get("x-goog-if-generation-match")
            if self.storage.get_bucket(bucket) is None:
                return self._xml_error(404, "NoSuchBucket", bucket)
            if wanted is not None and not self._holds(self._generation(bucket, key), wanted):
                return self._xml_error(412, "PreconditionFailed", "x-goog-if-generation-match")
            ctype = self.headers.get("Content-Type")
            source = self.headers.get("x-goog-copy-source")
            metadata = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items()
                        if k.lower().startswith("x-goog-meta-")}
            if source:
                src_bucket, _, src_key = unquote(source).lstrip("/").partition("/")
                try:
                    src = self.storage.get_file_obj(src_bucket, src_key)
                    data = self.storage.get_file(src_bucket, src_key)
                except NotFound:
                    return self._xml_error(404, "NoSuchKey", src_key)
                ctype, metadata = src.get("contentType"), src.get("metadata")
            obj = self._store(bucket, key, data, ctype, metadata or None)
            self._send(200, headers=self._object_headers(obj))

        def _uploads(self):
            if not hasattr(self.storage, "xml_uploads"):
                self.storage.xml_uploads = {}
            return self.storage.xml_uploads

        def _xml_multipart_post(self, path, query):
            """XML multipart uploads: initiate (?uploads) and complete (?uploadId=)."""
            bucket, key = self._split(path)
            body = self._buffer_body()
            if "uploads" in query:
                if self.storage.get_bucket(bucket) is None:
                    return self._xml_error(404, "NoSuchBucket", bucket)
                upload_id = uuid.uuid4().hex
                self._uploads()[upload_id] = {"key": (bucket, key), "parts": {},
                                              "content_type": self.headers.get("Content-Type")}
                return self._send(200, (f"<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
                                        f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                                        f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>").encode(),
                                  content_type="application/xml")
            upload = self._uploads().pop(query.get("uploadId", [""])[0], None)
            if upload is None or upload["key"] != (bucket, key):
                return self._xml_error(404, "NoSuchUpload")
            order = [int(n.text) for n in ElementTree.fromstring(body).iter("PartNumber")]
            data = b"".join(upload["parts"][n][1] for n in order)
            obj = self._store(bucket, key, data, upload["content_type"])
            result = (f"<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
                      f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                      f"<ETag>{escape(self._object_headers(obj)['ETag'])}</ETag></CompleteMultipartUploadResult>")
            self._send(200, result.encode(), headers=self._object_headers(obj), content_type="application/xml")

        def _xml_delete(self, path):
            bucket, key = self._split(path)
            upload_id = self._url()[1].get("uploadId", [None])[0]
            if upload_id is not None:  # abort a multipart upload
                self._uploads().pop(upload_id, None)
                return self._send(204)
            current = self._generation(bucket, key)
            if current is None:
                return self._xml_error(404, "NoSuchKey", key)
            wanted = self.headers.get("x-goog-if-generation-match")
            if wanted is not None and not self._holds(current, wanted):
                return self._xml_error(412, "PreconditionFailed", "x-goog-if-generation-match")
            self.storage.delete_file(bucket, key)
            self._send(204)

    return Handler


def _exit_with_parent() -> None:
    import threading

    def watch():
        sys.stdin.read()  # returns at EOF: the test process has gone
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    _exit_with_parent()
    {"gcs": serve_gcs, "s3": serve_s3}[sys.argv[1]]()
