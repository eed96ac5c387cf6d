"""Motion vectors read straight from the decoder's AVFrame, without PyAV's side-data objects.

PyAV's `frame.side_data` builds a container that refers back to the frame (a reference cycle), so
every frame whose side data was touched lives until the cyclic garbage collector runs. The decoder
then cannot reuse its frame buffers and allocates fresh ones; at 720p that costs more than reading
the vectors. This module calls FFmpeg's own `av_frame_get_side_data` on the frame through ctypes
and copies the `AVMotionVector` array into numpy, creating no Python object that holds the frame.

Safety: the AVFrame pointer is read from PyAV's `Frame` object at a fixed offset. The fast path is
enabled per process only after it has been checked on a real frame: the pointer's AVFrame must
report the frame's width and height, and the side data found must equal PyAV's own reading of it
byte for byte. Any mismatch (another PyAV or FFmpeg layout) switches permanently to PyAV's reader,
which gives the same arrays more slowly.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import threading

import av
import numpy as np

log = logging.getLogger(__name__)

# FFmpeg decoders that export motion vectors (the mpegvideo family and H.264).
MV_CODECS = frozenset(
    {"h264", "mpeg4", "mpeg2video", "mpeg1video", "h263", "h263p", "flv1", "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2"}
)

# libavutil/motion_vector.h AVMotionVector, natural alignment: 40 bytes.
MOTION_VECTOR_DTYPE = np.dtype(
    [
        ("source", "<i4"), ("w", "u1"), ("h", "u1"),
        ("src_x", "<i2"), ("src_y", "<i2"), ("dst_x", "<i2"), ("dst_y", "<i2"),
        ("flags", "<u8"), ("motion_x", "<i4"), ("motion_y", "<i4"), ("motion_scale", "<u2"),
    ],
    align=True,
)
AV_FRAME_DATA_MOTION_VECTORS = 8  # libavutil/frame.h, stable since FFmpeg 2.x
_AVFRAME_WIDTH_OFFSET = 104  # after data[8], linesize[8], extended_data
_SIDE_DATA_DATA_OFFSET = 8  # AVFrameSideData: int type; uint8_t *data; size_t size
_SIDE_DATA_SIZE_OFFSET = 16
# Offset of `Frame.ptr` (av/frame.pxd): the PyObject header (16 bytes), then Cython's vtable pointer.
# Only this one is tried: the field after it is an AVRational, which must never be dereferenced.
_PTR_OFFSETS = (24,)
# Set REELBEAM_PYAV_SIDEDATA=1 to always use PyAV's reader.
_FORCE_PYAV = os.environ.get("REELBEAM_PYAV_SIDEDATA", "") not in ("", "0")


def pyav_vectors(frame: av.VideoFrame) -> np.ndarray | None:
    mvs = frame.side_data.get("MOTION_VECTORS")
    if mvs is None:
        return None
    return mvs.to_ndarray()


class SideDataReader:
    """ctypes access to av_frame_get_side_data of the libavutil that PyAV itself loaded.

    width_offset: where AVFrame's width field sits (the layout check reads it); a test passes a
    wrong one to see the reader fall back to PyAV.
    """

    def __init__(self, width_offset: int = _AVFRAME_WIDTH_OFFSET) -> None:
        self._width_offset = width_offset
        self.state = "unchecked"  # unchecked -> ok | off
        self.offset = 0
        self._lock = threading.Lock()
        self._get = None
        if _FORCE_PYAV:
            self.state = "off"
            return
        try:
            libs = glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libavutil*"))
            lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libavutil.so")
            get = lib.av_frame_get_side_data
            get.restype = ctypes.c_void_p
            get.argtypes = [ctypes.c_void_p, ctypes.c_int]
            self._get = get
        except (OSError, AttributeError, IndexError) as exc:
            log.info("fast motion-vector reader unavailable (%s); using PyAV's side data", exc)
            self.state = "off"

    def _raw(self, frame: av.VideoFrame, offset: int) -> np.ndarray | None:
        ptr = ctypes.c_void_p.from_address(id(frame) + offset).value
        sd = self._get(ptr, AV_FRAME_DATA_MOTION_VECTORS)
        if not sd:
            return None
        data = ctypes.c_void_p.from_address(sd + _SIDE_DATA_DATA_OFFSET).value
        size = ctypes.c_size_t.from_address(sd + _SIDE_DATA_SIZE_OFFSET).value
        count = size // MOTION_VECTOR_DTYPE.itemsize
        if not data or count == 0:
            return np.zeros(0, MOTION_VECTOR_DTYPE)
        # string_at copies into a bytes object; a ctypes array type per length would cost ~150 us
        # a frame (ctypes builds and caches a new type for every distinct size).
        return np.frombuffer(ctypes.string_at(data, count * MOTION_VECTOR_DTYPE.itemsize), MOTION_VECTOR_DTYPE)

    def _check(self, frame: av.VideoFrame) -> np.ndarray | None:
        """Find and verify the pointer offset on this frame; returns PyAV's reading."""
        reference = pyav_vectors(frame)
        if reference is None:
            return None  # nothing to compare against yet: stay unchecked
        for offset in _PTR_OFFSETS:
            ptr = ctypes.c_void_p.from_address(id(frame) + offset).value
            if not ptr or ptr % 8:
                continue
            w = ctypes.c_int.from_address(ptr + self._width_offset).value
            h = ctypes.c_int.from_address(ptr + self._width_offset + 4).value
            if (w, h) != (frame.width, frame.height):
                continue
            got = self._raw(frame, offset)
            if got is not None and got.dtype == reference.dtype and np.array_equal(got, reference):
                self.offset, self.state = offset, "ok"
                return reference
        log.info("fast motion-vector reader failed its check on PyAV %s; using PyAV's side data", av.__version__)
        self.state = "off"
        return reference

    def vectors(self, frame: av.VideoFrame) -> np.ndarray | None:
        if self.state == "ok":
            return self._raw(frame, self.offset)
        if self.state == "off":
            return pyav_vectors(frame)
        with self._lock:
            if self.state == "unchecked":
                return self._check(frame)
        return self.vectors(frame)


_READER: SideDataReader | None = None


def motion_vectors(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's motion vectors (MOTION_VECTOR_DTYPE array), or None when it exports none."""
    global _READER
    if _READER is None:
        _READER = SideDataReader()
    return _READER.vectors(frame)
