"""OpenCLIP's text tokenizer without PyTorch: the same BPE, text cleaning and truncation, as NumPy.

The ONNX runtime must not import torch, and OpenCLIP's ``SimpleTokenizer`` returns (and imports)
torch tensors. This is the same algorithm (byte-level BPE over OpenCLIP's merges file, ftfy + HTML
unescape + whitespace/lower-case cleaning, ``<start_of_text>``/``<end_of_text>``, cut at the context
length with the last id replaced by ``<end_of_text>``, zero padding), so the ids are equal by
construction; ``embedding/tests/test_onnx_parity.py`` checks them against OpenCLIP's on a corpus.
"""

from __future__ import annotations

import gzip
import html
import itertools
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex

START, END = "<start_of_text>", "<end_of_text>"
CLEANERS = ("lower", "whitespace")


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """Every byte gets a printable character, so BPE works on text and never sees whitespace or control bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def _clean(text: str, mode: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    text = " ".join(text.split()).strip()
    return text.lower() if mode == "lower" else text


class ClipTokenizer:
    """Texts -> int64 token ids (N, context_length), equal to OpenCLIP's ``SimpleTokenizer``."""

    def __init__(self, bpe_path: Path, context_length: int, clean: str = "lower") -> None:
        if clean not in CLEANERS:
            raise ValueError(f"text cleaning {clean!r} is not supported (only {', '.join(CLEANERS)})")
        merges_text = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in merges_text[1 : 49152 - 256 - 2 + 1]]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [char + "</w>" for char in byte_chars] + ["".join(merge) for merge in merges]
        vocab += [START, END]
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self.context_length = context_length
        self.clean = clean
        self._cache: dict[str, list[int]] = {}
        self._pattern = regex.compile(
            rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
        )

    def _bpe(self, token: str) -> list[int]:
        if (cached := self._cache.get(token)) is not None:
            return cached
        if token in (START, END):
            ids = [self.encoder[token]]
        else:
            word = (*token[:-1], token[-1] + "</w>")
            while len(word) > 1:
                pairs = set(itertools.pairwise(word))
                best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
                if best not in self.ranks:
                    break
                merged: list[str] = []
                i = 0
                while i < len(word):
                    if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                        merged.append(word[i] + word[i + 1])
                        i += 2
                    else:
                        merged.append(word[i])
                        i += 1
                word = tuple(merged)
            ids = [self.encoder[part] for part in word]
        if len(self._cache) < 100_000:
            self._cache[token] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """The BPE ids of one text, without start/end tokens."""
        byte_chars = _bytes_to_unicode()
        ids: list[int] = []
        for token in self._pattern.findall(_clean(text, self.clean)):
            ids.extend(self._bpe("".join(byte_chars[b] for b in token.encode("utf-8"))))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        result = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.end_id
            result[row, : len(ids)] = ids
        return result
