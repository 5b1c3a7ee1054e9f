"""``python -m demo.train_model``: train the demo model on the synthetic world and write its checkpoint and scores.

Everything that makes the model is OpenCLIP's: the architecture (``open_clip.create_model`` on
``demo/dy-demo.json``, registered with ``open_clip.add_model_config``), the eval preprocessing the
service applies, the tokenizer and the contrastive loss (``open_clip.loss.ClipLoss``). Training runs
on the CPU with a fixed seed, a fixed thread count and torch's deterministic algorithms, so the same
command gives the same weights and scores on the same torch build.

The combinations are split into train, validation and test (:func:`testkit.demo_world.split_scenes`).
Only the train combinations are drawn for training. The learning rate is chosen among
:data:`LR_CANDIDATES`, fixed before any score was seen, by the validation scores alone (text->image
MRR, then recall@5): each candidate trains in full and the best one is the checkpoint. The test
combinations are scored once, for the chosen checkpoint, after the choice. Every score is computed
from the saved, half-precision weights loaded back the way the service loads them.

The checkpoint is the state dict in half precision (the 49,408-token embedding table dominates its
size). ``--short`` is a seconds-long run of the same code whose scores are recorded too
(``short_run``): the test that training is reproducible repeats it and compares.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

# Before torch loads its OpenMP runtime: threads that spin while waiting for work made every step
# many times slower on a machine whose cores other processes share (bench/RESULTS.md; the service
# sets the same policy).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss

from demo.scores import ranks_of_targets, retrieval_scores
from testkit import DEMO_CHECKPOINT, DEMO_MODEL, DEMO_MODEL_CONFIG, DEMO_SCORES
from testkit.demo_world import SPLIT_SEED, TEST_SEED, VALIDATION_SEED, Scene, draw, split_scenes

RENDER_SIDES = (64, 96, 128)  # training images are drawn at these sizes, then preprocessed to 64 as served
LR_CANDIDATES = (1e-3, 2e-3, 4e-3)
SHORT = {"steps": 20, "images_per_scene": 2}
EVALUATED = {"validation": VALIDATION_SEED, "test": TEST_SEED}  # split -> jitter seed of its pictures


def build_model() -> tuple[Any, Any, Any]:
    """The untrained demo model (OpenCLIP's code), its eval preprocessing and its tokenizer."""
    open_clip.add_model_config(DEMO_MODEL_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(DEMO_MODEL, pretrained=None)
    return model, preprocess, open_clip.get_tokenizer(DEMO_MODEL)


def seed_everything(seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def training_images(
    scenes: list[Scene], per_scene: int, preprocess: Any, seed: int
) -> tuple[torch.Tensor, list[Scene]]:
    """``per_scene`` jittered drawings of each training scene, preprocessed as served (kept in fp16)."""
    rng = random.Random(seed)
    pixels, labels = [], []
    for copy in range(per_scene):
        for index, scene in enumerate(scenes):
            side = RENDER_SIDES[rng.randrange(len(RENDER_SIDES))]
            pixels.append(preprocess(draw(scene, seed * 7919 + copy * 100_003 + index, side)).half())
            labels.append(scene)
    return torch.stack(pixels), labels


def split_scores(model: Any, preprocess: Any, tokenizer: Any, scenes: list[Scene], seed: int) -> dict[str, float]:
    """Text->image retrieval on one split's scenes: one picture each (jitter ``seed + i``), queried by its
    full caption, ranked among the split's pictures."""
    model.eval()
    with torch.inference_mode():
        images = torch.stack([preprocess(draw(scene, seed + i)) for i, scene in enumerate(scenes)])
        image_vectors = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
        text_vectors = torch.nn.functional.normalize(
            model.encode_text(tokenizer([s.caption() for s in scenes])).float(), dim=-1
        )
    similarity = (text_vectors @ image_vectors.T).numpy()
    return retrieval_scores(ranks_of_targets(similarity, range(len(scenes))))


def train(
    *, seed: int, steps: int, batch_size: int, images_per_scene: int, lr: float, threads: int
) -> tuple[Any, dict[str, Any]]:
    """Train from scratch; returns the model (fp32) and what the run did."""
    seed_everything(seed, threads)
    model, preprocess, tokenizer = build_model()
    pixels, labels = training_images(split_scenes().train, images_per_scene, preprocess, seed)
    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(step, steps) / steps))
    )
    generator = torch.Generator().manual_seed(seed)
    caption_rng = random.Random(seed)
    model.train()
    losses: list[float] = []
    started = time.monotonic()
    for step in range(steps):
        batch = torch.randperm(len(labels), generator=generator)[:batch_size]
        captions = [
            labels[i].caption() if caption_rng.random() < 0.5 else labels[i].partial_caption(caption_rng)
            for i in batch.tolist()
        ]
        image_features, text_features, logit_scale = model(pixels[batch].float(), tokenizer(captions))
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f} ({time.monotonic() - started:.0f} s)")
    run = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "images_per_scene": images_per_scene,
        "training_images": len(labels),
        "lr": lr,
        "threads": threads,
        "final_loss": round(float(np.mean(losses[-10:])), 4),
    }
    return model, run


def save_half(model: Any, path: Path) -> None:
    """The state dict in fp16 (what open_clip's ``pretrained=<file>`` loads, casting back to the model's dtype)."""
    torch.save({name: tensor.half() for name, tensor in model.state_dict().items()}, path)


def scores_of_checkpoint(path: Path, split: str) -> dict[str, float]:
    """Scores of a saved checkpoint on ``split`` (validation or test), loaded through ``pretrained=`` as
    the service loads it."""
    open_clip.add_model_config(DEMO_MODEL_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(DEMO_MODEL, pretrained=str(path))
    scenes = getattr(split_scenes(), split)
    return split_scores(model, preprocess, open_clip.get_tokenizer(DEMO_MODEL), scenes, EVALUATED[split])


def _choice_key(candidate: dict[str, Any]) -> tuple[float, float]:
    return candidate["validation"]["mrr"], candidate["validation"]["recall_at_5"]


def select(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train each learning rate in full; keep the one best on validation at ``out``; score it on test."""
    candidates = []
    for lr in args.lrs:
        model, run = train(
            seed=args.seed,
            steps=args.steps,
            batch_size=args.batch_size,
            images_per_scene=args.images_per_scene,
            lr=lr,
            threads=args.threads,
        )
        path = out.with_suffix(f".lr{lr:g}.pt")
        save_half(model, path)
        candidates.append({**run, "validation": scores_of_checkpoint(path, "validation"), "path": path})
        print(f"lr {lr:g}: validation {candidates[-1]['validation']}", flush=True)
    chosen = max(candidates, key=_choice_key)  # the first of equals: the smaller learning rate
    chosen["path"].replace(out)
    for candidate in candidates:
        candidate.pop("path").unlink(missing_ok=True)
    return {
        **{k: v for k, v in chosen.items() if k != "validation"},
        "selection": {
            "by": "validation text->image mrr, then recall@5",
            "candidates": [
                {"lr": c["lr"], "final_loss": c["final_loss"], "validation": c["validation"]} for c in candidates
            ],
        },
        "validation": chosen["validation"],
        "test": scores_of_checkpoint(out, "test"),
    }


def short_run(seed: int, threads: int, out: Path) -> dict[str, Any]:
    """The seconds-long run recorded beside the full one, for the reproducibility test."""
    model, run = train(seed=seed, lr=1e-3, batch_size=64, threads=threads, **SHORT)
    save_half(model, out)
    return {**run, **{split: scores_of_checkpoint(out, split) for split in EVALUATED}}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.train_model", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images-per-scene", type=int, default=12)
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LR_CANDIDATES), help="learning rates to try")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the same count gives the same weights)")
    parser.add_argument("--out", type=Path, default=DEMO_CHECKPOINT, help="checkpoint file to write")
    parser.add_argument("--scores", type=Path, default=DEMO_SCORES, help="scores JSON to write")
    parser.add_argument("--short", action="store_true", help="only the short run; print its record as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.short:
        print(json.dumps(short_run(args.seed, args.threads, args.out)))
        return 0
    started = time.monotonic()
    chosen = select(args, args.out)
    splits = split_scenes()
    record = {
        "model": DEMO_MODEL,
        "config": DEMO_MODEL_CONFIG.name,
        "checkpoint": args.out.name,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "splits": {"seed": SPLIT_SEED, **{name: len(scenes) for name, scenes in splits._asdict().items()}},
        **chosen,
        "training_s": round(time.monotonic() - started),
        "short_run": short_run(args.seed, args.threads, args.out.with_suffix(".short.pt")),
    }
    args.out.with_suffix(".short.pt").unlink()
    args.scores.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
