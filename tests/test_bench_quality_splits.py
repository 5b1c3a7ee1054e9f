"""The demo world's train, validation and test splits are disjoint, and each stage uses its own.

No combination is in two splits; together they are the whole world. Training draws only train
combinations, ``bench quality`` scores only test ones, and the training script's choice of
settings reads validation scores only (its record says so and lists the candidates).
"""

from __future__ import annotations

import json

import pytest

from bench.quality import QUICK, scored_scenes
from demo.train_model import RENDER_SIDES, training_images
from testkit import DEMO_SCORES
from testkit.demo_world import all_scenes, split_scenes

pytestmark = pytest.mark.unit


def test_no_scene_is_in_two_splits_and_every_scene_is_in_one() -> None:
    splits = split_scenes()
    train, validation, test = (set(part) for part in splits)
    assert not train & validation
    assert not train & test
    assert not validation & test
    assert train | validation | test == set(all_scenes())
    assert [len(part) for part in splits] == [540, 72, 108]
    assert split_scenes() == splits  # fixed by its seed
    assert split_scenes(seed=15) != splits


def test_training_draws_only_train_scenes() -> None:
    splits = split_scenes()
    _, labels = training_images(splits.train[:20], 2, _preprocess_checking_side, seed=0)
    assert set(labels) == set(splits.train[:20])
    assert not set(labels) & (set(splits.validation) | set(splits.test))


def _preprocess_checking_side(image: object) -> object:
    """In place of the model's preprocessing (not under test here): checks the drawing's size."""
    import torch

    assert image.width in RENDER_SIDES  # type: ignore[attr-defined]
    return torch.zeros(1)


def test_bench_quality_scores_test_scenes_only() -> None:
    test = split_scenes().test
    assert [scene for _, scene in scored_scenes(quick=False)] == test
    assert [scene for _, scene in scored_scenes(quick=True)] == test[:QUICK]


def test_the_committed_model_was_chosen_on_validation_and_scored_on_test() -> None:
    record = json.loads(DEMO_SCORES.read_text())
    assert record["splits"] == {"seed": 14, "train": 540, "validation": 72, "test": 108}
    candidates = record["selection"]["candidates"]
    assert len(candidates) > 1
    assert all(set(candidate) == {"lr", "final_loss", "validation"} for candidate in candidates)  # no test score
    best = max(candidates, key=lambda c: (c["validation"]["mrr"], c["validation"]["recall_at_5"]))
    assert record["lr"] == best["lr"]
    assert record["validation"] == best["validation"]
    assert set(record["test"]) == {"recall_at_1", "recall_at_5", "recall_at_10", "mrr"}
