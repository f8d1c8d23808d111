#!/usr/bin/env python
"""FFHQ (Flickr-Faces-HQ) -> an AuthFace training set, with ``authface prepare``.

    python datasets/ffhq.py SRC -o DATASET [--dry-run] [--limit N] [--allow-partial]
        [--metadata ffhq-dataset-v2.json] [--crop-size 512] [--quality sharpness] [--dedupe-threshold 6]

SRC is the downloaded ``images1024x1024`` folder (70,000 PNGs ``00000/00000.png`` ... ``69000/69999.png``) or a
512x512 copy with the same file names. Nothing is downloaded: get the set from https://github.com/NVlabs/ffhq-dataset
(``python download_ffhq.py --images``; see datasets/cards/ffhq.md for size, licence and checksums).

Checks before anything is written: the names (``NNNNN.png``, index < 70000, each once), the count (all 70,000
unless ``--allow-partial``), every used image's size (all 1024x1024 or all 512x512, from the file headers), and with
``--metadata`` (the official ``ffhq-dataset-v2.json``) each 1024x1024 file's published size and MD5; a file that
fails is named and left out (exit 1). Then ``authface prepare`` aligns, deduplicates and scores the faces into
DATASET (manifest.jsonl, dataset_card.md, ...) and ``DATASET/recipe.json`` records the recipe run. Re-running
adds only photos not prepared yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SPEC = common.SPECS["ffhq"]


def load_checksums(path: str) -> dict[str, tuple[int, str]]:
    """``{file name: (bytes, md5)}`` of the 1024x1024 images in the official ``ffhq-dataset-v2.json``.

    Raises:
        RecipeError: the file is missing or not FFHQ's metadata JSON.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        table = {Path(item["image"]["file_path"]).name: (int(item["image"]["file_size"]), item["image"]["file_md5"])
                 for item in data.values()}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise common.RecipeError(f"--metadata {path}: not FFHQ's ffhq-dataset-v2.json ({type(exc).__name__}: "
                                 f"{exc}); it comes with the set ({SPEC.where()})") from exc  # fmt: skip
    return table


def make_verifier(metadata: str | None):
    """The MD5 check of the used files against ``--metadata`` (None: no check; the plan says so)."""

    def verify(files: list[Path], plan: common.Plan) -> dict[Path, str]:
        if metadata is None:
            plan.add(
                "checksums not verified (pass --metadata ffhq-dataset-v2.json to check every file's MD5)"
            )
            return {}
        table = load_checksums(metadata)
        failed: dict[Path, str] = {}
        for path in files:
            size, md5 = table.get(path.name, (None, None))
            if md5 is None:
                failed[path] = "not listed in the metadata"
            elif common.image_size(path) != (1024, 1024):
                raise common.RecipeError("--metadata checks the 1024x1024 PNGs; these images are not (drop "
                                         "--metadata for a resized copy)")  # fmt: skip
            elif path.stat().st_size != size or common.file_md5(path) != md5:
                failed[path] = f"size/MD5 differ from the published {size} bytes, md5 {md5} (re-download it)"
        plan.add(f"checksums: {len(files) - len(failed)} of {len(files)} file(s) match {metadata}")
        return failed

    return verify


def main(argv: list[str] | None = None) -> int:
    parser = common.training_parser(SPEC, "Build an AuthFace training set from a downloaded FFHQ folder.")
    parser.add_argument("--metadata", default=None, metavar="JSON",
                        help="official ffhq-dataset-v2.json: verify each 1024x1024 file's size and MD5")  # fmt: skip
    return common.run_main(
        lambda a: common.build_training_set(SPEC, a, make_verifier(a.metadata)), parser, argv
    )


if __name__ == "__main__":
    sys.exit(main())
