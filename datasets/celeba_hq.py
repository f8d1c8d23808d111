#!/usr/bin/env python
"""CelebA-HQ -> an AuthFace training set, with ``authface prepare``.

    python datasets/celeba_hq.py SRC -o DATASET [--dry-run] [--limit N] [--allow-partial]
        [--exclude-celeba-test] [--crop-size 512] [--quality sharpness] [--dedupe-threshold 6]

SRC is a CelebA-HQ folder: CelebAMask-HQ's ``CelebA-HQ-img`` (30,000 JPEGs ``0.jpg`` ... ``29999.jpg`` at
1024x1024; the CelebAMask-HQ root works too) or a copy named ``00000.png`` ... ``29999.png`` at 1024 or 512. Nothing is
downloaded: get it from https://github.com/switchablenorms/CelebAMask-HQ (see datasets/cards/celeba_hq.md).

``--exclude-celeba-test`` leaves out the 3,000 images that ``datasets/celeba_test.py`` uses by default (indices
27000-29999), so a model trained here is not tested on its own training faces. Checks, output and re-runs as in
``datasets/ffhq.py`` (no published checksums exist for CelebA-HQ).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SPEC = common.SPECS["celeba_hq"]
#: The default CelebA-Test split of datasets/celeba_test.py: the last 3,000 CelebA-HQ indices.
TEST_INDICES = range(27_000, 30_000)


def make_verifier(exclude_test: bool):
    """Leave the CelebA-Test images out when asked (they are not failures: the exit code stays 0)."""

    def verify(files: list[Path], plan: common.Plan) -> dict[Path, str]:
        if not exclude_test:
            plan.add("no published checksums for CelebA-HQ: files checked by name, count and size only")
            return {}
        test = {p for p in files if int(Path(p).stem) in TEST_INDICES}
        plan.add(f"--exclude-celeba-test: {len(test)} image(s) of indices 27000-29999 left out")
        files[:] = [p for p in files if p not in test]
        return {}

    return verify


def main(argv: list[str] | None = None) -> int:
    parser = common.training_parser(
        SPEC, "Build an AuthFace training set from a downloaded CelebA-HQ folder."
    )
    parser.add_argument("--exclude-celeba-test", action="store_true",
                        help="leave out indices 27000-29999 (the default CelebA-Test split of celeba_test.py)")  # fmt: skip
    return common.run_main(
        lambda a: common.build_training_set(SPEC, a, make_verifier(a.exclude_celeba_test)), parser, argv
    )


if __name__ == "__main__":
    sys.exit(main())
