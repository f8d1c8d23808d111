"""Shared helpers of the dataset recipes in this folder.

The recipes are scripts, not a package (a ``datasets/__init__.py`` would shadow Hugging Face ``datasets``): each
one puts this folder on ``sys.path`` and imports this module by name::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common as common

What lives here: the description of each standard set (:class:`SetSpec`, :data:`SPECS`), the source checks
(:func:`match_source`, :func:`check_sizes`, :func:`check_count`) that raise :class:`SourceError` when a folder is
not the expected set, the common command line (:func:`base_parser`), the plan printed by ``--dry-run``
(:class:`Plan`), running ``authface`` commands in this process (:func:`run_authface`), the training-set recipe
shared by FFHQ and CelebA-HQ (:func:`build_training_set`) and small file helpers. Nothing is downloaded: every
recipe takes a folder the user already has and says where to get it.

Exit codes of every recipe: 0 done, 1 some files failed (each named), 2 the source is not the expected set or a
usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CARDS = HERE / "cards"
RECIPE_NAME = "recipe.json"
RECIPE_FORMAT = 1


def _image_suffixes() -> frozenset[str]:
    """The extensions ``authface`` reads (so a recipe sees exactly the files prepare and degrade will)."""
    try:
        from authface.io import IMAGE_EXTENSIONS
    except ImportError:  # a source checkout without `pip install -e .`: use the checkout's authface
        sys.path.append(str(REPO))
        from authface.io import IMAGE_EXTENSIONS

    return frozenset(e.lower() for e in IMAGE_EXTENSIONS)


IMAGE_SUFFIXES = _image_suffixes()


class SourceError(Exception):
    """The source folder is missing or is not the expected set (wrong folder, wrong sizes, files missing)."""


class RecipeError(Exception):
    """A usage problem that is not about the source (bad option, output folder in the way)."""


@dataclass(frozen=True)
class SetSpec:
    """What one standard set looks like when downloaded from its public source.

    Attributes:
        key: short name used in file names (``ffhq``, ``lfw``).
        title: the set's usual name (``FFHQ``, ``LFW-Test``).
        url: where to get it (printed in every source error).
        card: the dataset card, relative to this folder.
        count: number of images of the complete set.
        sizes: accepted square image sides in pixels (empty: any size).
        pattern: regular expression a file name must match (None: any image name); group 1 is the image index.
        max_index: indices must be below this (with ``pattern``).
        layout: one line on how the downloaded folder is laid out (for error messages).
    """

    key: str
    title: str
    url: str
    card: str
    count: int
    sizes: tuple[int, ...] = ()
    pattern: str | None = None
    max_index: int | None = None
    layout: str = ""

    def where(self) -> str:
        """One sentence naming the source and the card, for error messages."""
        return f"get {self.title} from {self.url} (see datasets/{self.card})"


SPECS: dict[str, SetSpec] = {
    "ffhq": SetSpec(
        "ffhq", "FFHQ", "https://github.com/NVlabs/ffhq-dataset", "cards/ffhq.md", 70_000, (1024, 512),
        r"^(\d{5})\.(?:png|jpe?g|webp)$", 70_000,
        "images1024x1024/00000/00000.png ... images1024x1024/69000/69999.png (or the same names at 512x512)",
    ),
    "celeba_hq": SetSpec(
        "celeba_hq", "CelebA-HQ", "https://github.com/switchablenorms/CelebAMask-HQ", "cards/celeba_hq.md",
        30_000, (1024, 512), r"^(\d{1,5})\.(?:png|jpe?g|webp)$", 30_000,
        "CelebAMask-HQ/CelebA-HQ-img/0.jpg ... 29999.jpg (or 00000.png ... 29999.png)",
    ),
    "lfw": SetSpec(
        "lfw", "LFW-Test", "https://github.com/TencentARC/VQFR", "cards/lfw_test.md", 1_711, (512,),
        layout="one folder of aligned 512x512 LQ face crops",
    ),
    "webphoto": SetSpec(
        "webphoto", "WebPhoto-Test", "https://github.com/TencentARC/VQFR", "cards/webphoto_test.md", 407, (512,),
        layout="one folder of aligned 512x512 LQ face crops",
    ),
    "wider": SetSpec(
        "wider", "WIDER-Test", "https://github.com/sczhou/CodeFormer", "cards/wider_test.md", 970, (512,),
        layout="one folder of aligned 512x512 LQ face crops",
    ),
    "celebchild": SetSpec(
        "celebchild", "CelebChild-Test", "https://github.com/TencentARC/VQFR", "cards/celebchild_test.md", 180,
        (512,), layout="one folder of aligned 512x512 LQ face crops",
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# console and command line


def say(line: str) -> None:
    """One console line on stderr, prefixed with the recipe's script name."""
    print(f"{Path(sys.argv[0]).stem}: {line}", file=sys.stderr, flush=True)


def base_parser(
    description: str, spec: SetSpec | None = None, partial: bool = True
) -> argparse.ArgumentParser:
    """The options every recipe has: ``SRC -o OUT [--dry-run] [--limit N]`` (``[--allow-partial]`` with
    ``partial``)."""
    epilog = f"Source: {spec.where()}. Expected layout: {spec.layout}." if spec else None
    p = argparse.ArgumentParser(description=description, epilog=epilog)
    p.add_argument("src", metavar="SRC", help="the downloaded set (a folder; nothing is downloaded)")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output folder (created or completed)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="check the source and list what would be done; write nothing"
    )
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="use only the first N images (quick trials)"
    )
    if partial:
        p.add_argument("--allow-partial", action="store_true",
                       help="accept a source with fewer images than the complete set (each one still checked)")  # fmt: skip
    return p


def check_limit(limit: int | None) -> None:
    """Raise :class:`RecipeError` for a ``--limit`` below 1."""
    if limit is not None and limit < 1:
        raise RecipeError(f"--limit must be a positive integer, got {limit}")


def run_main(body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse ``argv``, run ``body(args)`` and turn :class:`SourceError` / :class:`RecipeError` into exit code 2."""
    args = parser.parse_args(argv)
    try:
        check_limit(args.limit)
        return body(args)
    except SourceError as exc:
        say(f"error: SourceError: {exc}")
        return 2
    except RecipeError as exc:
        say(f"error: {exc}")
        return 2


def command_line(argv: Sequence[str], max_files: int = 6) -> str:
    """``authface ARGV`` as a shell line; long runs of file arguments are shortened to ``<N files>``."""
    parts: list[str] = []
    files: list[str] = []
    for a in list(argv) + [""]:
        if a and not a.startswith("-") and Path(a).suffix.lower() in IMAGE_SUFFIXES:
            files.append(a)
            continue
        if files:
            parts += files if len(files) <= max_files else [*files[:2], f"<... {len(files) - 2} more files>"]
            files = []
        if a:
            parts.append(a)
    return "authface " + " ".join(shlex.quote(p) if not p.startswith("<") else p for p in parts)


def run_authface(argv: Sequence[str]) -> int:
    """Run ``authface ARGV`` in this process (no argument-length limit for long file lists); its exit code."""
    from authface.cli import main

    say(f"running: {command_line(argv)}")
    return int(main(list(argv)))


# --------------------------------------------------------------------------------------------------------------
# source checks


def find_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files (by extension) under ``root``, sorted by path; hidden files and folders are skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    return sorted(found)


def source_dir(src: str | os.PathLike, hint: str) -> Path:
    """``src`` resolved; :class:`SourceError` (ending with ``hint``: where to get the set) when it is not an
    existing folder."""
    path = Path(src).expanduser().resolve()
    if not path.is_dir():
        raise SourceError(f"{path} is not a folder; {hint}")
    return path


def match_source(root: Path, spec: SetSpec) -> tuple[dict[int, Path], list[Path]]:
    """The images of ``spec`` under ``root`` by index, and the other image files found there.

    Raises:
        SourceError: no image is named like the set (the folder is not the set), an index is past the set's last
            (another numbered set, e.g. FFHQ given as CelebA-HQ), or two files have one index.
    """
    images = find_images(root)
    if spec.pattern is None:
        return dict(enumerate(images)), []
    rx = re.compile(spec.pattern, re.IGNORECASE)
    by_index: dict[int, Path] = {}
    others: list[Path] = []
    for path in images:
        m = rx.match(path.name)
        if not m:
            others.append(path)
            continue
        idx = int(m.group(1))
        if spec.max_index is not None and idx >= spec.max_index:
            raise SourceError(f"{path} is named like an image of {spec.title} but its index {idx} is past the "
                              f"set's last, {spec.max_index - 1}: {root} is another set (FFHQ and CelebA-HQ are "
                              f"both numbered); {spec.where()}")  # fmt: skip
        if idx in by_index:
            raise SourceError(f"{root} holds image {idx} twice ({by_index[idx]} and {path}): not one copy of "
                              f"{spec.title}; point SRC at one copy ({spec.layout})")  # fmt: skip
        by_index[idx] = path
    if not by_index:
        seen = f" (found {len(images)} image(s), e.g. {images[0].name})" if images else " (found no image)"
        raise SourceError(f"{root} does not look like {spec.title}: no image named like {spec.layout}{seen}; "
                          f"{spec.where()}")  # fmt: skip
    return dict(sorted(by_index.items())), others


def check_count(found: int, spec: SetSpec, allow_partial: bool, root: Path) -> str | None:
    """A warning line for a partial set with ``allow_partial``; None for the complete set.

    Raises:
        SourceError: more images than the set has, or fewer without ``allow_partial``.
    """
    if found == spec.count:
        return None
    if found > spec.count:
        raise SourceError(f"{root} holds {found} images; {spec.title} has {spec.count}: not the set (did you "
                          f"point at a parent folder?); {spec.where()}")  # fmt: skip
    if not allow_partial:
        raise SourceError(f"{root} holds {found} of the {spec.count} images of {spec.title} (partial download?). "
                          f"Complete it ({spec.where()}) or pass --allow-partial to use what is there")  # fmt: skip
    return f"partial {spec.title}: {found} of {spec.count} images (--allow-partial)"


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (no decoding), or None when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def check_sizes(files: Sequence[Path], spec: SetSpec) -> Counter:
    """Read each file's header: a Counter of ``(w, h)``.

    Raises:
        SourceError: a file is unreadable, not square at a side of ``spec.sizes``, or the sizes are mixed.
    """
    sizes: Counter = Counter()
    unreadable: list[str] = []
    odd: list[str] = []
    for path in files:
        size = image_size(path)
        if size is None:
            unreadable.append(f"{path}: not a readable image")
            continue
        sizes[size] += 1
        if spec.sizes and (size[0] != size[1] or size[0] not in spec.sizes):
            odd.append(f"{path}: {size[0]}x{size[1]}")
    if unreadable:
        raise SourceError(f"{len(unreadable)} unreadable file(s) in {spec.title}: {'; '.join(unreadable[:5])}"
                          " (re-download them)")  # fmt: skip
    if odd:
        accepted = " or ".join(f"{s}x{s}" for s in spec.sizes)
        raise SourceError(f"{len(odd)} image(s) of the wrong size for {spec.title} (expected {accepted}), "
                          f"e.g. {'; '.join(odd[:3])}; {spec.where()}")  # fmt: skip
    if len(sizes) > 1:
        raise SourceError(f"{spec.title} images of mixed sizes ({sizes_text(sizes)}): two versions mixed in one "
                          "folder?")  # fmt: skip
    return sizes


def sizes_text(sizes: Counter) -> str:
    """``"3 at 512x512"``-style summary of a size Counter."""
    return ", ".join(f"{n} at {w}x{h}" for (w, h), n in sizes.most_common()) or "none"


def file_md5(path: Path) -> str:
    """MD5 hex digest of a file (the checksum FFHQ publishes)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_output(out: str | os.PathLike, src: Path) -> Path:
    """The output folder, resolved; :class:`RecipeError` when it is the source, inside it, or a file."""
    path = Path(out).expanduser().resolve()
    if path == src or src in path.parents:
        raise RecipeError(f"-o {path} is inside the source {src}; choose a folder outside it")
    if path.exists() and not path.is_dir():
        raise RecipeError(f"-o {path} exists and is not a folder")
    return path


# --------------------------------------------------------------------------------------------------------------
# plans, manifests, recipe records


@dataclass
class Plan:
    """What a recipe will do, printed by ``--dry-run`` (and before a real run)."""

    title: str
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def files(self, what: str, paths: Sequence[Path | str], show: int = 3) -> None:
        """One line naming the first ``show`` files of a list and its length."""
        shown = ", ".join(str(p) for p in paths[:show]) + (", ..." if len(paths) > show else "")
        self.add(f"{what}: {len(paths)} file(s): {shown}")

    def show(self, dry_run: bool) -> None:
        say(("dry run (nothing is written): " if dry_run else "") + self.title)
        for line in self.lines:
            say(f"  - {line}")


def write_jsonl(path: Path, header: dict, records: Iterable[dict]) -> None:
    """Write ``header`` then one JSON object per record, atomically (:func:`authface.io.write_text`)."""
    from authface import io

    lines = [json.dumps(header, sort_keys=True)] + [json.dumps(r, sort_keys=True) for r in records]
    io.write_text(path, "\n".join(lines) + "\n")


def write_recipe_record(out: Path, spec: SetSpec, src: Path, **extra) -> None:
    """``OUT/recipe.json``: which recipe made the folder, from which source, with which authface."""
    from authface import __version__, io

    record = {"format": RECIPE_FORMAT, "recipe": Path(sys.argv[0]).name, "set": spec.title, "source": str(src),
              "source_url": spec.url, "card": f"datasets/{spec.card}", "argv": sys.argv[1:],
              "authface": __version__, **extra}  # fmt: skip
    io.write_json(out / RECIPE_NAME, record)


def place_file(src: Path, dst: Path, mode: str) -> None:
    """Put ``src`` at ``dst``: ``copy``, ``symlink`` or ``hardlink`` (:func:`authface.io.place_file`)."""
    from authface import io

    io.place_file(src, dst, mode)


# --------------------------------------------------------------------------------------------------------------
# the training-set recipe (FFHQ, CelebA-HQ)


def training_parser(spec: SetSpec, description: str) -> argparse.ArgumentParser:
    """:func:`base_parser` plus the ``authface prepare`` options a training-set recipe passes on."""
    p = base_parser(description, spec)
    p.add_argument("--crop-size", type=int, default=512, help="aligned crop side in pixels (default 512)")
    p.add_argument("--quality", default="sharpness", metavar="NAME[=MODEL],...",
                   help="prepare's quality scorer(s) (default sharpness; e.g. pyiqa:topiq_nr-face=WEIGHTS.pth)")  # fmt: skip
    p.add_argument(
        "--dedupe-threshold", type=int, default=6, help="prepare's near-duplicate pHash distance (default 6)"
    )
    p.add_argument(
        "--detector", default="dlib", help="prepare's face detector when it must detect (default dlib)"
    )
    p.add_argument("--caption-template", default=None, help="caption of every face (default: none)")
    p.add_argument("--device", default="cpu", help="device of the quality scorers (default cpu)")
    return p


def prepare_has_aligned() -> bool:
    """Whether this authface's ``prepare`` can take aligned crops without detection (an ``aligned`` setting)."""
    import dataclasses

    from authface.data.prepare_settings import PrepareSettings

    return any(f.name == "aligned" for f in dataclasses.fields(PrepareSettings))


def prepare_argv(
    files: Sequence[Path], root: Path, out: Path, args: argparse.Namespace, whole: bool
) -> list[str]:
    """The ``authface prepare`` arguments for an already FFHQ-aligned set.

    The images are aligned crops with one centred face: with an ``--aligned`` option prepare skips detection;
    without one, the face is detected and re-aligned to the same template (``--upsample 0``: the face fills the
    image, so upsampling only costs time and finds background faces) and ``--max-faces 1`` keeps the centred
    (largest) face. ``whole``: pass ``root`` itself instead of the file list (the whole folder is used).
    """
    argv = ["prepare", *([str(root)] if whole else [str(f) for f in files]), "-o", str(out),
            "--crop-size", str(args.crop_size), "--quality", args.quality,
            "--dedupe-threshold", str(args.dedupe_threshold), "--device", args.device]  # fmt: skip
    if prepare_has_aligned():
        argv.append("--aligned")
    else:
        argv += ["--detector", args.detector, "--max-faces", "1"]
        if args.detector.startswith("dlib"):
            argv += ["--upsample", "0"]
    if args.caption_template:
        argv += ["--caption-template", args.caption_template]
    return argv


Verifier = Callable[[list[Path], "Plan"], dict[Path, str]]


def build_training_set(spec: SetSpec, args: argparse.Namespace, verify: Verifier | None = None) -> int:
    """Check the source of ``spec`` and run ``authface prepare`` on it (the FFHQ and CelebA-HQ recipes).

    ``verify(files, plan)`` may add source checks (e.g. FFHQ's published MD5s): it returns ``{file: reason}`` for
    bad files, which are named, left out of the training set and make the exit code 1.
    Returns the exit code: prepare's (0 / 1 / 2), or 1 when ``verify`` found bad files.
    """
    root = source_dir(args.src, spec.where())
    out = check_output(args.output, root)
    by_index, others = match_source(root, spec)
    partial = check_count(len(by_index), spec, args.allow_partial, root)
    files = list(by_index.values())[: args.limit] if args.limit else list(by_index.values())
    sizes = check_sizes(files, spec)
    side = next(iter(sizes))[0]
    if side < args.crop_size:
        raise RecipeError(f"--crop-size {args.crop_size} is larger than the {side}x{side} images: it would "
                          f"upscale them; use --crop-size {side} or the larger version of {spec.title}")  # fmt: skip
    plan = Plan(f"{spec.title} -> AuthFace training set {out}")
    plan.add(f"source {root}: {len(by_index)} image(s) named like {spec.title}, {sizes_text(sizes)} checked")
    if partial:
        plan.add(partial)
    if others:
        plan.add(f"{len(others)} other image file(s) ignored, e.g. {others[0]}")
    failed = verify(files, plan) if verify else {}
    files = [f for f in files if f not in failed]
    if not files:
        raise SourceError(f"no {spec.title} image passed the checks; {spec.where()}")
    whole = len(files) == len(by_index) and not others  # the folder itself: a short command line
    argv = prepare_argv(files, root, out, args, whole)
    plan.files("prepare", files)
    plan.add(f"run: {command_line(argv)}")
    plan.add(f"write {out / RECIPE_NAME}")
    plan.show(args.dry_run)
    for path, reason in failed.items():
        say(f"FAILED {path}: {reason} (left out)")
    if args.dry_run:
        return 1 if failed else 0
    code = run_authface(argv)
    if code != 2:
        write_recipe_record(out, spec, root, images=len(files), limit=args.limit, partial=bool(partial),
                            sizes=sizes_text(sizes), command=command_line(argv), prepare_exit=code,
                            failed_checks=len(failed))  # fmt: skip
    return code if code else (1 if failed else 0)
