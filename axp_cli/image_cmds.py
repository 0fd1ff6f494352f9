"""`axp image build`."""

from __future__ import annotations

import argparse
import os

from .errors import EXIT_ENGINE, EXIT_OK, CliError


def cmd_image_build(args: argparse.Namespace) -> int:
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.docker_image import DEFAULT_BASE_IMAGE, build_image

    try:
        tag = build_image(args.tag, args.base_image or os.environ.get(
            "AXP_BASE_IMAGE", DEFAULT_BASE_IMAGE), log=print)
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    print(f"built {tag}")
    return EXIT_OK
