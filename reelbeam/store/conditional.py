"""Compare-and-swap writes of one small object, on each storage backend reelbeam writes to.

`conditional_object(url)` returns a `ConditionalObject` with four operations, each atomic on the
backends that support it:

    read()                -> Versioned(data, token) | None
    create(data)          -> token      only if absent, else PreconditionFailed
    replace(data, token)  -> token      only if unchanged since `token` was read, else PreconditionFailed
    delete(token)                       only if unchanged since `token` was read, else PreconditionFailed

| backend | token | how each write is made conditional |
| --- | --- | --- |
| local folder | SHA-256 of the content | an exclusive `flock` on `<name>.lock` around check-then-write; create by `os.link` of a complete temporary file (fails if the name exists: `O_EXCL` semantics without a half-written file), replace by `os.replace` |
| `gs://` (gcsfs) | object generation | `ifGenerationMatch=0` (create) or `=<generation>` (replace, delete) on the JSON API |
| `s3://` (s3fs) | ETag | `If-None-Match: *` (create), `If-Match: <etag>` (replace, delete) |
| any other fsspec URL | SHA-256 of the content | none: check, then write (`atomic` is False) |

gcsfs exposes only `mode="create"` (`ifGenerationMatch=0`), so replace and delete send their own
requests through the filesystem's authenticated session (`GCSFileSystem.call`). s3fs's `_call_s3`
filters request parameters through botocore's model and turns 412 into a generic `OSError`, so the S3
operations call the (aiobotocore) client it holds directly and read the error codes themselves.

Where a backend turns a condition down as unsupported (an S3-compatible store answering
`NotImplemented` to `If-None-Match`, a botocore too old to know `DeleteObject`'s `IfMatch`), the
operation falls back to check-then-write, logs a warning once, and `atomic` becomes False.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

try:  # POSIX; without it local writes fall back to check-then-write
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class PreconditionFailed(Exception):
    """The object was not in the state the write was conditioned on (present, absent or changed)."""


class NotWritable(Exception):
    """The location cannot be written (permissions, read-only file system, no such bucket, no space)."""


@dataclass(frozen=True)
class Versioned:
    data: bytes
    token: str


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class ConditionalObject:
    """One object (file) with conditional writes; see the module docstring."""

    url: str
    atomic: bool = True
    mechanism: str = ""

    def read(self) -> Versioned | None:
        raise NotImplementedError

    def create(self, data: bytes) -> str:
        raise NotImplementedError

    def replace(self, data: bytes, token: str) -> str:
        raise NotImplementedError

    def delete(self, token: str) -> None:
        raise NotImplementedError

    def _degrade(self, why: str) -> None:
        if self.atomic:
            log.warning("%s: %s; falling back to check-then-write (not atomic)", self.url, why)
        self.atomic = False
        self.mechanism = f"check-then-write ({why})"


# ---------------------------------------------------------------------------------------- local


_NOT_WRITABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT,
                        errno.ENOTDIR}


def _os_reason(err: OSError) -> str:
    return err.strerror or str(err)


class LocalObject(ConditionalObject):
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.url = self.path
        self.lock_path = self.path + ".lock"
        self.atomic = fcntl is not None
        self.mechanism = ("flock + os.link create + os.replace" if self.atomic
                          else "check-then-write (no fcntl.flock on this platform)")

    @contextmanager
    def _locked(self):
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise NotWritable(_os_reason(e)) from e
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def read(self) -> Versioned | None:
        # Writers only ever link or rename complete files into place, so a read needs no lock.
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise NotWritable(_os_reason(e)) from e
        return Versioned(data, _digest(data))

    def _write_tmp(self, data: bytes) -> str:
        folder, name = os.path.split(self.path)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise NotWritable(_os_reason(e)) from e
        return tmp

    def _sync_dir(self) -> None:
        try:
            fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def create(self, data: bytes) -> str:
        with self._locked():
            tmp = self._write_tmp(data)
            try:
                try:
                    os.link(tmp, self.path)
                except FileExistsError as e:
                    raise PreconditionFailed(f"{self.path} exists") from e
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                        raise NotWritable(_os_reason(e)) from e
                    # no hard links here (some FUSE and SMB mounts): plain O_EXCL create
                    self._create_excl(data)
            finally:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self._sync_dir()
        return _digest(data)

    def _create_excl(self, data: bytes) -> None:
        try:
            with open(self.path, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError as e:
            raise PreconditionFailed(f"{self.path} exists") from e
        except OSError as e:
            raise NotWritable(_os_reason(e)) from e

    def _check(self, token: str) -> None:
        current = self.read()
        if current is None:
            raise PreconditionFailed(f"{self.path} is gone")
        if current.token != token:
            raise PreconditionFailed(f"{self.path} changed")

    def replace(self, data: bytes, token: str) -> str:
        with self._locked():
            self._check(token)
            tmp = self._write_tmp(data)
            try:
                os.replace(tmp, self.path)
            except OSError as e:
                os.unlink(tmp)
                raise NotWritable(_os_reason(e)) from e
            self._sync_dir()
        return _digest(data)

    def delete(self, token: str) -> None:
        with self._locked():
            self._check(token)
            try:
                os.unlink(self.path)
            except FileNotFoundError as e:
                raise PreconditionFailed(f"{self.path} is gone") from e
            except OSError as e:
                raise NotWritable(_os_reason(e)) from e
            self._sync_dir()


# ------------------------------------------------------------------------------------------ GCS


def _gcs_quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


class _BucketObject(ConditionalObject):
    scheme = ""

    def __init__(self, fs, path: str):
        self.fs = fs
        self.bucket, self.key, _ = fs.split_path(path)
        self.url = f"{self.scheme}://{self.bucket}/{self.key}"


class GCSObject(_BucketObject):
    """gcsfs: generation preconditions through the filesystem's own authenticated session."""

    scheme = "gs"
    mechanism = "GCS generation preconditions (ifGenerationMatch)"

    def _fail(self, err: Exception, what: str):
        if isinstance(err, FileExistsError):  # gcsfs maps 412 Precondition Failed to FileExistsError
            return PreconditionFailed(f"{self.url}: {what}")
        if isinstance(err, FileNotFoundError):
            return NotWritable(f"bucket gs://{self.bucket} does not exist")
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        code = getattr(err, "code", None)
        if isinstance(err, PermissionError) or code in (401, 403) or "Forbidden" in text:
            return NotWritable(f"gs://{self.bucket}: permission denied ({text})")
        return None

    def read(self) -> Versioned | None:
        for _ in range(10):
            try:
                meta = self.fs.call("GET", "b/{}/o/{}", self.bucket, self.key, json_out=True)
            except FileNotFoundError:
                return None
            except Exception as e:  # noqa: BLE001 - re-raised, as a one-line error where recognised
                raise self._fail(e, "read") or e
            generation = str(meta["generation"])
            try:
                _, data = self.fs.call("GET", "b/{}/o/{}", self.bucket, self.key, alt="media",
                                       generation=generation)
            except FileNotFoundError:
                continue  # replaced or deleted between the two requests: look again
            return Versioned(bytes(data), generation)
        raise PreconditionFailed(f"{self.url} keeps changing")

    def _upload(self, data: bytes, if_generation_match: str) -> str:
        # The JSON API's multipart upload, as gcsfs's own simple_upload sends it, plus a precondition.
        meta = json.dumps({"name": self.key, "contentType": "application/json"})
        body = (f'--==0==\nContent-Type: application/json; charset=UTF-8\n\n{meta}\n--==0==\n'
                f'Content-Type: application/json\n\n').encode() + data + b"\n--==0==--"
        try:
            out = self.fs.call(
                "POST", f"{self.fs._location}/upload/storage/v1/b/{_gcs_quote(self.bucket)}/o",
                uploadType="multipart", ifGenerationMatch=if_generation_match,
                headers={"Content-Type": 'multipart/related; boundary="==0=="'}, data=body, json_out=True)
        except Exception as e:  # noqa: BLE001 - re-raised, as a one-line error where recognised
            what = "exists" if if_generation_match == "0" else "changed"
            raise self._fail(e, what) or e
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")
        return str(out["generation"])

    def create(self, data: bytes) -> str:
        return self._upload(data, "0")

    def replace(self, data: bytes, token: str) -> str:
        return self._upload(data, token)

    def delete(self, token: str) -> None:
        try:
            self.fs.call("DELETE", "b/{}/o/{}", self.bucket, self.key, ifGenerationMatch=token)
        except FileNotFoundError as e:
            raise PreconditionFailed(f"{self.url} is gone") from e
        except Exception as e:  # noqa: BLE001 - re-raised, as a one-line error where recognised
            raise self._fail(e, "changed") or e
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")


# ------------------------------------------------------------------------------------------- S3


_S3_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
              "InvalidToken", "ExpiredToken", "AccountProblem"}


class S3Object(_BucketObject):
    """s3fs: S3 conditional writes, sent with the aiobotocore client s3fs holds."""

    scheme = "s3"
    mechanism = "S3 conditional writes (If-None-Match: *, If-Match: ETag)"
    _conditional_delete: bool | None = None  # whether botocore's DeleteObject knows IfMatch

    def _call(self, method: str, **kwargs):
        from fsspec.asyn import sync

        async def go():
            await self.fs.set_session()
            client = await self.fs.get_s3(self.bucket)
            out = await getattr(client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
            if method == "get_object":
                async with out["Body"] as stream:
                    out = {**out, "Body": await stream.read()}
            return out

        return sync(self.fs.loop, go)

    def _error(self, err: Exception, what: str) -> Exception | None:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(err, NoCredentialsError):
            return NotWritable("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                               "AWS_PROFILE or the storage options' key/secret)")
        if not isinstance(err, ClientError):
            return None
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return PreconditionFailed(f"{self.url}: {what}")
        if code == "NoSuchBucket":
            return NotWritable(f"bucket s3://{self.bucket} does not exist")
        if code in _S3_DENIED or status == 403:
            return NotWritable(f"s3://{self.bucket}: permission denied ({code})")
        return None

    @staticmethod
    def _unsupported(err: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(err, ClientError):
            return False
        code = err.response.get("Error", {}).get("Code", "")
        return code == "NotImplemented" or err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501

    def read(self) -> Versioned | None:
        from botocore.exceptions import ClientError

        try:
            out = self._call("get_object")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(e, "read") or e
        except Exception as e:  # noqa: BLE001 - re-raised, as a one-line error where recognised
            raise self._error(e, "read") or e
        return Versioned(out["Body"], out["ETag"])

    def _put(self, data: bytes, what: str, **condition) -> str:
        try:
            out = self._call("put_object", Body=data, ContentType="application/json", **condition)
        except Exception as e:  # noqa: BLE001 - re-raised, as a one-line error where recognised
            if self._unsupported(e) and condition:
                self._degrade(f"the store does not support {', '.join(condition)}")
                return self._put_unconditionally(data, condition)
            raise self._error(e, what) or e
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")
        return out["ETag"]

    def _put_unconditionally(self, data: bytes, condition: dict) -> str:
        current = self.read()
        if "IfNoneMatch" in condition and current is not None:
            raise PreconditionFailed(f"{self.url}: exists")
        if "IfMatch" in condition and (current is None or current.token != condition["IfMatch"]):
            raise PreconditionFailed(f"{self.url}: changed")
        return self._put(data, "write")

    def create(self, data: bytes) -> str:
        if not self.atomic:
            return self._put_unconditionally(data, {"IfNoneMatch": "*"})
        return self._put(data, "exists", IfNoneMatch="*")

    def replace(self, data: bytes, token: str) -> str:
        if not self.atomic:
            return self._put_unconditionally(data, {"IfMatch": token})
        return self._put(data, "changed", IfMatch=token)

    def _delete_supports_if_match(self) -> bool:
        if self._conditional_delete is None:
            from fsspec.asyn import sync

            async def members():
                await self.fs.set_session()
                client = await self.fs.get_s3(self.bucket)
                return client.meta.service_model.operation_model("DeleteObject").input_shape.members

            self._conditional_delete = "IfMatch" in sync(self.fs.loop, members)
        return self._conditional_delete

    def delete(self, token: str) -> None:
        if not self._delete_supports_if_match():
            log.warning("%s: this botocore has no conditional DeleteObject; deleting after a check", self.url)
            current = self.read()
            if current is None or current.token != token:
                raise PreconditionFailed(f"{self.url}: changed")
            self._call("delete_object")
            return
        try:
            self._call("delete_object", IfMatch=token)
        except Exception as e:
            from botocore.exceptions import ClientError

            if isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise PreconditionFailed(f"{self.url} is gone") from e
            raise self._error(e, "changed") or e
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")


# ------------------------------------------------------------------------------ other fsspec URLs


class FsspecObject(ConditionalObject):
    """Any other fsspec filesystem: check, then write. Two writers can both pass the check."""

    atomic = False

    def __init__(self, fs, path: str, url: str):
        self.fs, self.path, self.url = fs, path, url
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.mechanism = f"check-then-write ({protocol}:// has no conditional writes in reelbeam)"

    def read(self) -> Versioned | None:
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return Versioned(data, _digest(data))

    def _write(self, data: bytes) -> str:
        try:
            self.fs.pipe_file(self.path, data)
        except PermissionError as e:
            raise NotWritable(f"{self.url}: {e}") from e
        return _digest(data)

    def create(self, data: bytes) -> str:
        if self.read() is not None:
            raise PreconditionFailed(f"{self.url} exists")
        return self._write(data)

    def replace(self, data: bytes, token: str) -> str:
        current = self.read()
        if current is None or current.token != token:
            raise PreconditionFailed(f"{self.url} changed")
        return self._write(data)

    def delete(self, token: str) -> None:
        current = self.read()
        if current is None or current.token != token:
            raise PreconditionFailed(f"{self.url} changed")
        self.fs.rm_file(self.path)


def conditional_object(url: str, storage_options: dict | None = None) -> ConditionalObject:
    """The `ConditionalObject` for `url` (a local path, `file://`, `gs://`, `s3://` or other fsspec URL)."""
    if "://" not in url or url.startswith(("file://", "local://")):
        return LocalObject(url.split("://", 1)[1] if "://" in url else url)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & {"file", "local"}:
        return LocalObject(path)
    if protocols & {"gs", "gcs"} and hasattr(fs, "_location"):
        return GCSObject(fs, path)
    if protocols & {"s3", "s3a"} and hasattr(fs, "get_s3"):
        return S3Object(fs, path)
    return FsspecObject(fs, path, url)
