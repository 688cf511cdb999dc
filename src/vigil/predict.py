"""``python -m vigil.predict --input_path X --output_path Y``: the ``vigil predict`` command.

The scoring itself is :func:`vigil.inference.batch.predict_file` (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m vigil.predict``: the ``vigil predict`` command on its own."""
    import typer

    from vigil.cli.inference_commands import predict

    app = typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)
    app.command()(predict)
    app(args=argv, prog_name="python -m vigil.predict")


if __name__ == "__main__":
    main()
