#!/usr/bin/env python
"""The real-world blind-face-restoration test sets -> AuthFace evaluation folders: LFW-Test (1,711 faces),
WebPhoto-Test (407), WIDER-Test (970) and CelebChild-Test (180). They are low-quality aligned face crops without
ground truth, so they are scored with no-reference metrics (and identity against the LQ).

    python datasets/real_world.py SRC -o OUT [--set lfw|webphoto|wider|celebchild] [--link copy|symlink|hardlink]
        [--dry-run] [--limit N] [--allow-partial]

SRC is one set's downloaded folder (its name tells which set, e.g. ``LFW-Test``; or pass ``--set``) or a folder
holding several of them (each sub-folder named after a set is built). Nothing is downloaded: see the cards in
datasets/cards/ (LFW-Test, WebPhoto-Test and CelebChild-Test come with TencentARC/VQFR's test data, WIDER-Test with
sczhou/CodeFormer's).

Checks: the image count (the complete set unless ``--allow-partial``; more images than the set has is an error),
every file is a readable image (a broken one is named and left out: exit 1), and the sizes (512x512 expected; other
sizes are reported, and a folder where no image is 512x512 is refused as not the set). Output per set::

    OUT/<set>/lq/<relative path>    the LQ crops (copies by default; --link symlink|hardlink)
    OUT/<set>/manifest.jsonl        line 1: the set, counts, source; then one line per file: rel, file, source,
                                    sha256, size [w, h], bytes
    OUT/<set>/recipe.json           the recipe run

Then: ``authface restore OUT/lfw/lq -o RESTORED --aligned ...`` and
``authface eval --pred RESTORED --lq OUT/lfw/lq --metrics ...`` (no-reference metrics; identity vs the LQ).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SETS = ("lfw", "webphoto", "wider", "celebchild")
#: Words in a folder name that name a set (lower case, letters and digits only).
NAME_WORDS = {
    "lfw": ("lfw",),
    "webphoto": ("webphoto",),
    "wider": ("wider",),
    "celebchild": ("celebchild", "child"),
}
LINK_MODES = ("copy", "symlink", "hardlink")


def set_of_folder(name: str) -> str | None:
    """The set a folder name names (``LFW-Test`` -> ``lfw``), or None."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    hits = [key for key, words in NAME_WORDS.items() if any(w in flat for w in words)]
    return hits[0] if len(hits) == 1 else None


def find_sets(root: Path, chosen: str | None) -> list[tuple[str, Path]]:
    """``[(set key, folder)]`` to build from SRC.

    Raises:
        SourceError: ``--set`` is missing and neither SRC's name nor its sub-folders' names name a set.
    """
    if chosen:
        return [(chosen, root)]
    key = set_of_folder(root.name)
    if key:
        return [(key, root)]
    subs = sorted((set_of_folder(d.name), d) for d in root.iterdir() if d.is_dir() and set_of_folder(d.name))
    keys = [k for k, _ in subs]
    if not subs or len(set(keys)) != len(keys):
        names = ", ".join(common.SPECS[k].title for k in SETS)
        raise common.SourceError(f"cannot tell which test set {root} is: its name names none of {names} and "
                                 f"{'two sub-folders name the same set' if subs else 'no sub-folder does'}; "
                                 "pass --set lfw|webphoto|wider|celebchild")  # fmt: skip
    return subs


def check_set(key: str, folder: Path, args) -> tuple[list[Path], dict[Path, tuple[int, int]], list[str], str]:
    """Files to use, their sizes, problem lines (unreadable files) and a summary line.

    Raises:
        SourceError: wrong count, or no image at the expected size (not the set).
    """
    spec = common.SPECS[key]
    files = common.find_images(folder)
    if not files:
        raise common.SourceError(f"{folder} holds no image: not {spec.title}; {spec.where()}")
    partial = common.check_count(len(files), spec, args.allow_partial, folder)
    files = files[: args.limit] if args.limit else files
    sizes: dict[Path, tuple[int, int]] = {}
    unreadable: list[str] = []
    for path in files:
        size = common.image_size(path)
        if size is None:
            unreadable.append(f"{path}: not a readable image (left out)")
        else:
            sizes[path] = size
    expected = [p for p, s in sizes.items() if s[0] == s[1] and s[0] in spec.sizes]
    if sizes and not expected:
        w, h = next(iter(sizes.values()))
        raise common.SourceError(f"{folder}: no image is {spec.sizes[0]}x{spec.sizes[0]} (e.g. {w}x{h}): not the "
                                 f"aligned {spec.title} crops; {spec.where()}")  # fmt: skip
    summary = f"{spec.title} {folder}: {len(files)} image(s) used, {len(expected)} at the expected size"
    if len(expected) < len(sizes):
        summary += f", {len(sizes) - len(expected)} at other sizes (kept, reported)"
    if partial:
        summary += f"; {partial}"
    return [p for p in files if p in sizes], sizes, unreadable, summary


def build_set(key: str, folder: Path, out: Path, files: list[Path], sizes, args) -> None:
    """Place the files and write the manifest and recipe record of one set."""
    from authface import io

    spec = common.SPECS[key]
    records = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        common.place_file(path, out / "lq" / rel, args.link)
        records.append({"rel": rel, "file": f"lq/{rel}", "source": str(path), "sha256": io.sha256_file(path),
                        "size": list(sizes[path]), "bytes": path.stat().st_size})  # fmt: skip
    header = {"type": "eval_folder", "format": 1, "set": spec.title, "key": key, "images": len(records),
              "expected": spec.count, "source": str(folder), "lq": "lq", "link": args.link, "gt": None}  # fmt: skip
    common.write_jsonl(out / "manifest.jsonl", header, records)
    common.write_recipe_record(out, spec, folder, images=len(records), limit=args.limit, link=args.link)


def build(args) -> int:
    """The recipe (see the module docstring); returns the exit code."""
    hint = common.SPECS[args.set].where() if args.set else "see the cards in datasets/cards/"
    root = common.source_dir(args.src, hint)
    out_root = common.check_output(args.output, root)
    todo = []
    for key, folder in find_sets(root, args.set):
        files, sizes, unreadable, summary = check_set(key, folder, args)
        todo.append((key, folder, files, sizes, unreadable, summary))
    plan = common.Plan(f"real-world test sets from {root} -> {out_root}")
    for key, folder, files, _, _, summary in todo:
        plan.add(summary)
        plan.files(
            f"{args.link} into {out_root / key / 'lq'}", [f.relative_to(folder).as_posix() for f in files]
        )
        plan.add(f"write {out_root / key / 'manifest.jsonl'}, {out_root / key / common.RECIPE_NAME}")
    plan.show(args.dry_run)
    failed = [line for *_, unreadable, _ in todo for line in unreadable]
    for line in failed:
        common.say(f"FAILED {line}")
    if args.dry_run:
        return 1 if failed else 0
    for key, folder, files, sizes, _, _ in todo:
        build_set(key, folder, out_root / key, files, sizes, args)
        common.say(f"{common.SPECS[key].title}: {len(files)} image(s) in {out_root / key / 'lq'}; evaluate with "
                   f"authface eval --pred RESTORED --lq {out_root / key / 'lq'}")  # fmt: skip
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser("Turn downloaded real-world face test sets into AuthFace evaluation folders.")
    parser.add_argument("--set", choices=SETS, default=None, help="which set SRC is (default: from its name)")
    parser.add_argument(
        "--link", choices=LINK_MODES, default="copy", help="how lq/ holds the files (default copy)"
    )
    return common.run_main(build, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
