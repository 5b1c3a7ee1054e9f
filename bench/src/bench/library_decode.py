"""The embedding service's side of ``python -m bench library``, timed in this process: what decoding a
photo costs (its own functions, per format) and what the reduced decode changes in its vector."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.library_run import library_contents

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the ViT-B-32 preprocessing the service runs
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAMPLES = 200  # photos timed in this process for the decode's CPU: all of them, so HEIC counts as often as in the run


def _photo_paths(library: Path, limit: int) -> list[str]:
    return [paths[0] for paths in library_contents(library).values()][:limit]


def decode_cpu_s(library: Path) -> tuple[float, dict[str, float]]:
    """CPU seconds per photo of what the embedding service does before the model: read, decode (at reduced
    scale when the service's default says so), preprocess: its own functions, in this process, one photo
    at a time (the CPU of the decoders' own threads counted: libheif decodes a HEIC's tiles on several).
    Also the same per format, by file suffix (``jpg``, ``heic``): a HEIC cannot be decoded at reduced scale."""
    from dyimages_common.embeddings.wire import ImageRef
    from embedding.items import ImageLimits, prepare_image
    from embedding.preprocess import ImagePreprocess, input_side
    from embedding.settings import EmbeddingSettings

    preprocess = ImagePreprocess(size=224, mean=CLIP_MEAN, std=CLIP_STD)
    reduced = EmbeddingSettings.model_fields["embedding_reduced_decode"].default  # the service's default
    side = input_side(preprocess) if reduced else None
    limits = ImageLimits(library / ".no-images", 50 * 1024 * 1024, 50_000_000, photos_dir=library, decode_side=side)
    paths = _photo_paths(library, SAMPLES)
    by_format: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        started = time.process_time()
        pixels = prepare_image(ImageRef(library_path=path), limits, preprocess)
        by_format[path.rpartition(".")[2].lower()].append(time.process_time() - started)
        if not isinstance(pixels, np.ndarray):
            raise RuntimeError(f"{path}: {pixels}")
    every = [seconds for found in by_format.values() for seconds in found]
    return sum(every) / len(every), {fmt: round(sum(found) / len(found), 4) for fmt, found in sorted(by_format.items())}


def reduced_decode_cosines(library: Path) -> list[float]:
    """Cosine of each JPEG photo's vector from a full decode with the one from the reduced decode the
    embedding service makes (:func:`bench.decode_cosine.cosines`)."""
    from bench.decode_cosine import cosines

    return cosines([library / path for path in _photo_paths(library, 10_000)])
