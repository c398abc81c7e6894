"""``cellprobe encoders [--json] [--verify]``: the encoder zoo.

Lists name, family, pretraining data, published parameter count, patch size, tap widths and strides, default
taps and weight source. ``--verify`` also builds every architecture on the meta device (no weights, no memory)
and shows the counted parameters next to the published ones.
"""

from __future__ import annotations

import json

import typer


def _row(spec, counted: int | None) -> dict:
    row = {
        "name": spec.name, "title": spec.title, "family": spec.family, "group": spec.group,
        "pretraining": spec.pretraining, "params_published": spec.params_published,
        "params_source": spec.params_source, "patch_size": spec.patch_size, "native_input": spec.native_input,
        "fit": spec.fit, "fits": list(spec.fits), "card_fit": spec.card.describe() if spec.card else None,
        "card_source": spec.card.source if spec.card else None, "taps": list(spec.default_taps), "tap_channels": list(spec.tap_channels),
        "tap_strides": list(spec.tap_strides), "timm_arch": spec.arch, "weights": spec.weights.label,
        "license": spec.weights.license, "gated": spec.gated,
    }
    if counted is not None:
        row["params_counted"] = counted
    return row


def _count(spec) -> int:
    from cellprobe.encoders.frozen import create_timm_model

    model = create_timm_model(spec, num_classes=spec.params_num_classes, device="meta")
    return sum(p.numel() for p in model.parameters())


def register(app: typer.Typer) -> None:
    @app.command("encoders")
    def encoders(
        as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
        verify: bool = typer.Option(False, "--verify", help="Count each architecture's parameters (meta device)."),
    ) -> None:
        """List the registered frozen encoders (general-purpose and histopathology foundation models)."""
        from cellprobe.encoders.registry import list_encoders

        rows = [_row(spec, _count(spec) if verify else None) for spec in list_encoders()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="cellprobe encoders", show_lines=False)
        for column in ("name", "family", "pretraining", "params", "patch", "widths", "strides", "taps", "weights"):
            table.add_column(column, overflow="fold", no_wrap=column == "weights")
        for row in rows:
            params = row["params_published"]
            if verify:
                params += f" ({row['params_counted'] / 1e6:.1f}M counted)"
            taps = ",".join(str(t) for t in row["taps"])
            weights = row["weights"] + (" (gated)" if row["gated"] else "")
            table.add_row(row["name"], row["family"], row["pretraining"], params,
                          f"{row['patch_size']} ({row['fit']}"
                          + (f"; card: {row['card_fit']}" if row["card_fit"] else "") + ")", "/".join(map(str, row["tap_channels"])),
                          "/".join(map(str, row["tap_strides"])), taps,
                          weights)
        Console(width=200).print(table)
