"""The interactive explorer: pick experiment, backends, scale factor, precision, layout and output channel;
plots and metrics follow.

Displayed, an ``Explorer`` is a live ipywidgets panel in JupyterLab. Its display bundle also carries a static
HTML snapshot (metrics table and plot of the current state, image inline), which is what an exported HTML report
shows where no widget can run; the snapshot follows every change, so a notebook saved after exploring exports
what was last on screen.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from gnaexp import diagnosis, report
from gnaexp.gna_settings import FORUM_NETS, LAYOUTS, PRECISIONS
from gnaexp.markup import bold, escape

EXPERIMENTS = FORUM_NETS
BACKEND_CHOICES = ("torch", "openvino:CPU", "openvino:GNA", "gna-emu")


class Explorer:
    """Live explorer over one experiment at a time. ``shape`` takes the net shape parameters (e.g. length)."""

    def __init__(self, experiment: str = "concat_conv", backends: str = "torch,openvino:CPU,gna-emu",
                 scale_factor: float = 2048.0, precision: str = "i16", layout: str = "correct", channel: int = 0,
                 record_dir: str = "explorer.record", **shape: Any) -> None:
        import ipywidgets as w

        self.record_dir = record_dir
        self.shape = shape
        self.run_: report.NotebookRun | None = None
        self._display_id: Any = None
        self._quiet = False
        chosen = [s.strip() for s in backends.split(",") if s.strip()]
        self.experiment = w.Dropdown(options=EXPERIMENTS, value=experiment, description="experiment")
        self.backends = {b: w.Checkbox(value=b in chosen, description=b, indent=False,
                                       layout=w.Layout(width="auto")) for b in BACKEND_CHOICES}
        self.scale_factor = w.FloatLogSlider(value=scale_factor, base=2, min=0, max=15, step=1,
                                             description="scale factor", readout_format=".0f")
        # GNA 3.0 keeps convolution weights at int16 (int8 is for fully connected layers) and a concat has no
        # weights: on the forum nets the choice changes nothing, so the control says so instead of pretending.
        self.precision = w.ToggleButtons(options=PRECISIONS, value="i16", description="precision", disabled=True)
        self.precision_note = w.HTML(
            "<small>no effect on these nets: the GNA 3.0 plugin keeps convolution weights at int16 (int8 applies to "
            "fully connected layers) and a concat has no weights" + ("; i8 was asked, int16 is used" if precision == "i8"
                                                                     else "") + "</small>")
        self.layout = w.ToggleButtons(options=LAYOUTS, value=layout, description="emulator layout")
        self.channel = w.Dropdown(options=[channel], value=channel, description="channel")
        self.notes = w.HTML()
        self.table = w.HTML()
        self.image = w.Image(format="png")
        self.verdict = w.HTML()
        controls = [self.experiment, self.scale_factor, self.precision, self.layout, self.channel,
                    *self.backends.values()]
        for c in controls:
            c.observe(self._changed, names="value")
        self.panel = w.VBox([
            w.HBox([self.experiment, self.channel]),
            w.HBox([w.Label("backends"), *self.backends.values()]),
            self.scale_factor, w.HBox([self.precision, self.precision_note]), self.layout, self.notes, self.table,
            self.image, self.verdict,
        ])
        self.refresh()

    # --- state ------------------------------------------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        backends = ",".join(b for b, box in self.backends.items() if box.value) or "torch"
        return {"experiment": self.experiment.value, "backends": backends, "scale_factor": self._snapped_sf(),
                "precision": self.precision.value, "layout": self.layout.value, "record_dir": self.record_dir,
                **self.shape}

    def refresh(self) -> None:
        """Run the current selection and redraw everything (and the static snapshot)."""
        setting = report.setting_from(self.parameters())
        self.run_ = report.run_setting(setting)
        channels = next(iter(self.run_.reference.outputs.values())).shape[1]
        if list(self.channel.options) != list(range(channels)):
            keep = self.channel.value if self.channel.value < channels else 0
            self._quiet = True  # changing the options must not trigger a redraw of its own
            try:
                self.channel.options = list(range(channels))
                self.channel.value = keep
            finally:
                self._quiet = False
        self.notes.value = "".join(f"<p><b>Note:</b> {escape(n)}</p>" for n in setting.notes)
        self.table.value = report.metrics_table(self.run_).text
        self.image.value = self._png()
        self.verdict.value = "<br>".join(bold(line) for line in diagnosis.verdict_lines(self.run_.record))
        if self._display_id is not None:
            from IPython.display import update_display

            update_display(self._repr_mimebundle_(), display_id=self._display_id, raw=True)

    def _snapped_sf(self) -> float:
        """The slider's value as the power of two it offers: a typed 2048 can arrive as 2048.0000000000027."""
        exponent = round(math.log2(max(float(self.scale_factor.value), 1.0)))
        return float(2 ** min(max(exponent, int(self.scale_factor.min)), int(self.scale_factor.max)))

    def _changed(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        if change.get("owner") is self.scale_factor and float(change["new"]) != self._snapped_sf():
            self._quiet = True  # put the snapped value back on the slider, then run once
            try:
                self.scale_factor.value = self._snapped_sf()
            finally:
                self._quiet = False
        if change.get("owner") is self.channel:  # only the plot depends on the channel
            self.image.value = self._png()
            if self._display_id is not None:
                from IPython.display import update_display

                update_display(self._repr_mimebundle_(), display_id=self._display_id, raw=True)
            return
        self.refresh()

    def _png(self) -> bytes:
        from gnaexp import plots

        assert self.run_ is not None
        return plots.to_png(report.overlay_figure(self.run_, channels=[int(self.channel.value)]))

    # --- display ----------------------------------------------------------------------------------------------

    def snapshot_html(self) -> str:
        """The current state as static HTML: setting, notes, metrics table, plot (inline PNG), verdict."""
        assert self.run_ is not None
        params = ", ".join(f"{k}={v}" for k, v in self.parameters().items() if k != "record_dir")
        img = base64.b64encode(bytes(self.image.value)).decode("ascii")
        return (f"<div class='gnaexp-explorer-snapshot'><p><b>Explorer snapshot</b> (static; open the notebook in "
                f"JupyterLab to explore): {escape(params)}, channel {self.channel.value}</p>{self.notes.value}"
                f"{self.table.value}<img alt='overlay of channel {self.channel.value}' "
                f"src='data:image/png;base64,{img}'/><div class='gnaexp-verdict'>{self.verdict.value}</div></div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.panel._repr_mimebundle_() or {})
        bundle["text/html"] = self.snapshot_html()
        bundle["text/plain"] = "gnaexp explorer (" + ", ".join(f"{k}={v}" for k, v in self.parameters().items()) + ")"
        return bundle

    def show(self) -> None:
        """Display the panel, with an id so that the static snapshot follows later changes."""
        from IPython.display import display

        handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
        self._display_id = getattr(handle, "display_id", None)
