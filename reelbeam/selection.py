"""One way to name a video on every command (`export --video`, `evaluate`'s truth names, `--map`):
its video_id, its URI, or its file name with or without the extension where that names one
video only. Pure Python over `videos` rows; no Beam, no I/O."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence


class AmbiguousVideo(LookupError):
    """A name that several videos answer to; the message lists their URIs."""


def video_names(video_id: str, uri: str) -> list[str]:
    """The names a video answers to, most specific first: id, URI, file name, file name without
    its extension."""
    base = posixpath.basename(str(uri).rstrip("/").replace("\\", "/"))
    names = [str(video_id), str(uri), base, posixpath.splitext(base)[0]]
    return [n for n in dict.fromkeys(names) if n]


class VideoSelector:
    """Resolves names to `videos` rows (dicts with `video_id` and `uri`).

    An id or a URI always names one video; a file name (or one without its extension) is taken
    only when one video has it: two inputs `a/clip.mp4` and `b/clip.mp4` must be named by URI or
    id. A name given as a path or URL that is not a video's URI is tried by its file name too.
    """

    def __init__(self, videos: Sequence[dict]) -> None:
        self._exact: dict[str, dict] = {}
        self._by_name: dict[str, dict[str, dict]] = {}
        for v in videos:
            self._exact.setdefault(str(v["uri"]), v)
            self._exact[str(v["video_id"])] = v
            for name in video_names(v["video_id"], v["uri"])[2:]:
                self._by_name.setdefault(name, {})[str(v["video_id"])] = v

    def find(self, name: str) -> dict | None:
        """The video `name` names, None when none; raises AmbiguousVideo when several do."""
        name = str(name)
        if name in self._exact:
            return self._exact[name]
        base = posixpath.basename(name.rstrip("/").replace("\\", "/"))
        for key in dict.fromkeys((name, base, posixpath.splitext(base)[0])):
            found = self._by_name.get(key)
            if not found:
                continue
            if len(found) > 1:
                uris = sorted(str(v["uri"]) for v in found.values())
                raise AmbiguousVideo(f"{name!r} names {len(found)} videos ({', '.join(uris)}); give the URI or the video id")
            return next(iter(found.values()))
        return None

    def select(self, names: Iterable[str]) -> tuple[dict[str, dict], list[str]]:
        """({name: video} for the names found, [names found nowhere]); AmbiguousVideo as `find`."""
        found, missing = {}, []
        for name in names:
            v = self.find(name)
            if v is None:
                missing.append(name)
            else:
                found[name] = v
        return found, missing
