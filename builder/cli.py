"""Entry point `builder`. Subcommand groups live in builder/commands/; this module assembles
them and maps failures to exit codes: 0 ok, 1 failed, 2 bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from .commands.options import PROJECT_START
from .console import err
from .core.errors import BuildFailed, UserError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  builder vm ceph-training                 build, test, export and publish locally
  builder lab test ceph-training           the image's lab as a 3-node Ceph cluster (slow)
  builder image list                       images this checkout can build
  builder doctor --json                    what this host can do (KVM usable? tools?)
  builder ova inspect exported.ova --json  read any OVF/OVA
  builder -C ~/src/my-images image list    work on another images project""",
)
@click.option("-C", "chdir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False),
              help="Work on the project at or above DIR instead of the working directory.")
@click.version_option(package_name="builder")
@click.pass_context
def app(ctx: click.Context, chdir: Path | None) -> None:
    """Build, test and publish VM images for hands-on infrastructure training.

    builder works on the images project it runs in: the nearest directory at or above the
    working directory (or -C DIR) with an images/ folder or a builder.toml.
    """
    ctx.meta[PROJECT_START] = chdir


def _register() -> None:
    from .commands import doctor, fabric, image, lab, ova, pipeline, publish, runner, schedule, vm

    for mod in (vm, image, lab, fabric, ova, runner, publish, pipeline, schedule, doctor):
        for cmd in mod.COMMANDS:
            app.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        app.main(args=argv, prog_name="builder", standalone_mode=False)
    except UserError as e:
        err.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 2
    except BuildFailed as e:
        err.print(f"[red]failed:[/] {escape(str(e))}", soft_wrap=True)
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except (click.Abort, KeyboardInterrupt):
        err.print("[red]interrupted[/]: cleaned up")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
