"""``authface demo``: serve the web demo (Gradio) on this machine.

authface demo --model path/to/model [--host 127.0.0.1] [--port 7860] [--share false]
"""

from __future__ import annotations

import argparse
import sys

from ..config import DEFAULT_BASE_MODEL

DEMO_EXTRA_HINT = "pip install 'authface[demo]'"


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``authface demo`` on the top-level parser's subparsers."""
    p = subparsers.add_parser(
        "demo",
        help="serve the web demo (upload photos, compare before/after, download results)",
        description="Serve the AuthFace web demo (Gradio). Requests run one at a time. Needs the `demo` extra: "
        f"{DEMO_EXTRA_HINT}",
    )
    p.add_argument("--model", default=DEFAULT_BASE_MODEL,
                   help="initial model of the page: AuthFace model folder, diffusers folder, file or hub id "
                        f"(default: {DEFAULT_BASE_MODEL})")  # fmt: skip
    p.add_argument("--controlnet", default=None, help="ControlNet for every request (default: auto)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    p.add_argument("--share", type=_bool, default=False, metavar="{true,false}",
                   help="also serve through a public gradio.live link (default: false)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any restore setting: the initial value of a page setting (e.g. --set sampler.steps=30) or a "
                        "fixed one (e.g. --set face.detector=dlib-mmod); repeatable")  # fmt: skip
    p.set_defaults(func=cmd_demo)
    return p


def _page_defaults(overrides: list[str]) -> dict:
    from ..config import parse_override

    out = {}
    for text in overrides:
        key, value = parse_override(text)
        out[key] = value
    return out


def cmd_demo(args) -> int:
    """Serve until Ctrl-C: 0 on a clean stop, 2 when Gradio is missing, the port is taken or a setting is bad."""
    try:
        from ..demo.app import build_demo, launch_demo
    except ImportError as err:
        print(f"authface: error: {err}" if DEMO_EXTRA_HINT in str(err) else
              f"authface: error: the web demo needs Gradio ({err}): {DEMO_EXTRA_HINT}", file=sys.stderr)  # fmt: skip
        return 2
    from ..config import ConfigError

    fixed = {k: v for k, v in (("model.controlnet", args.controlnet), ("model.device", args.device)) if v}
    try:
        demo = build_demo(model=args.model, fixed=fixed, **_page_defaults(args.overrides))
        print(
            f"authface: starting the demo on http://{args.host}:{args.port} (Ctrl-C stops it)",
            file=sys.stderr,
        )
        launch_demo(demo, host=args.host, port=args.port, share=args.share)
    except (ConfigError, OSError) as err:
        print(f"authface: error: {err}", file=sys.stderr)
        return 2
    return 0
