"""The interactive explorer: pick experiment, backends, scale factor, precision, layout and output channel;
plots and metrics follow.

Displayed, an ``Explorer`` is three outputs:

- the live ipywidgets panel. A change updates the widgets' values in place (table, image, verdict): the panel
  is displayed once and never re-created, so keyboard focus stays on the control being used;
- a static HTML snapshot of the current state (setting, metrics table, plot inline, verdict), a plain
  ``text/html`` output that follows every change. It is what an exported HTML page shows where no widget can
  run (``gnaexp batch``, ``jupyter nbconvert --to html`` offline, a notebook opened without its widget state).
  While the panel is live it hides the snapshot with a style of its own, so the page shows one copy;
- on request (``show_provenance``), the environment, parameters and files of the current state, also
  following every change, so a saved notebook never pairs the snapshot of one state with the files of another.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from gnaexp.backends import parse_backend_list
from gnaexp.diagnose import verdicts as diagnosis
from gnaexp.present import report
from gnaexp.core.gna_settings import (DEFAULT_PLUGIN_RELEASE, FORUM_NETS, LAYOUTS, PLUGIN_RELEASES, PRECISIONS,
                                      check_plugin_release)
from gnaexp.present.markup import bold, escape

EXPERIMENTS = FORUM_NETS
BACKEND_CHOICES = ("torch", "openvino:CPU", "openvino:GNA", "gna-emu")
SNAPSHOT_CLASS = "gnaexp-explorer-snapshot"
# Rendered by the live panel only: where the panel runs, the static copy beside it is hidden.
_HIDE_SNAPSHOT = (f"<style>.{SNAPSHOT_CLASS}{{display:none}}"
                  ".widget-html .gnaexp-metrics td,.widget-html .gnaexp-metrics th{padding:1px 8px}</style>")
PLOT_SIZE = (9.4, 3.9)  # inches at plots.DPI: about the width of a JupyterLab output area
# The followers (snapshot, provenance) are re-sent once the state has stayed put this long, not on every step
# of a drag or a key held down: JupyterLab keeps memory for each replaced output (about 60 kB per snapshot).
FOLLOW_DELAY_S = 0.6


class Explorer:
    """Live explorer over one experiment at a time. ``shape`` takes the net shape parameters (e.g. length)."""

    def __init__(self, experiment: str = "concat_conv", backends: str = "torch,openvino:CPU,gna-emu",
                 scale_factor: float = 2048.0, precision: str = "i16", layout: str = "correct", channel: int = 0,
                 record_dir: str = "explorer.record", plugin_release: str = DEFAULT_PLUGIN_RELEASE,
                 **shape: Any) -> None:
        import ipywidgets as w

        self.record_dir = record_dir
        self.shape = shape
        self.run_: report.NotebookRun | None = None
        self._followers: list[tuple[Any, Any]] = []  # (display handle, function of the state → display object)
        self._pending: Any = None  # the scheduled update of the followers
        self._quiet = False
        chosen = parse_backend_list(backends)
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
        self.plugin_release = w.Dropdown(options=PLUGIN_RELEASES, value=check_plugin_release(plugin_release),
                                         description="GNA plugin")  # the release the emulator computes as
        self.channel = w.Dropdown(options=[channel], value=channel, description="channel")
        self.notes = w.HTML()
        self.table = w.HTML()
        from gnaexp.present import plots

        # A fixed size: a flex column would otherwise stretch the image to the panel's width, blurring it.
        self._plot_px = (round(PLOT_SIZE[0] * plots.DPI), round(PLOT_SIZE[1] * plots.DPI))
        self.image = w.Image(format="png", layout=w.Layout(width=f"{self._plot_px[0]}px",
                                                           height=f"{self._plot_px[1]}px"))
        self.verdict = w.HTML()
        controls = [self.experiment, self.scale_factor, self.precision, self.layout, self.plugin_release, self.channel,
                    *self.backends.values()]
        for c in controls:
            c.observe(self._changed, names="value")
        self.panel = w.VBox([
            w.HTML(_HIDE_SNAPSHOT),
            w.HBox([self.experiment, self.channel]),
            w.HBox([w.Label("backends"), *self.backends.values()]),
            self.scale_factor, w.HBox([self.precision, self.precision_note]), w.HBox([self.layout, self.plugin_release]),
            self.notes, self.table,
            self.image, self.verdict,
        ])
        self.refresh()

    # --- state ------------------------------------------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        backends = ",".join(b for b, box in self.backends.items() if box.value) or "torch"
        return {"experiment": self.experiment.value, "backends": backends, "scale_factor": self._snapped_sf(),
                "precision": self.precision.value, "layout": self.layout.value,
                "plugin_release": self.plugin_release.value, "record_dir": self.record_dir,
                **self.shape}

    def refresh(self) -> None:
        """Run the current selection and update every widget's value (and the outputs that follow the state)."""
        setting = report.setting_from(self.parameters())
        self.run_ = report.run_setting(setting)
        channels = next(iter(self.run_.reference.outputs.values())).shape[1]
        if list(self.channel.options) != list(range(channels)):
            keep = self.channel.value if self.channel.value < channels else 0
            self._quiet = True  # changing the options must not trigger a run of its own
            try:
                self.channel.options = list(range(channels))
                self.channel.value = keep
            finally:
                self._quiet = False
        self.notes.value = "".join(f"<p><b>Note:</b> {escape(n)}</p>" for n in setting.notes)
        self.table.value = report.metrics_table(self.run_).text
        self.image.value = self._png()
        self.verdict.value = "<br>".join(bold(line) for line in diagnosis.verdict_lines(self.run_.record))
        self._schedule_followers()

    def _snapped_sf(self) -> float:
        """The slider's value as the power of two it offers: a typed 2048 can arrive as 2048.0000000000027."""
        exponent = round(math.log2(max(float(self.scale_factor.value), 1.0)))
        return float(2 ** min(max(exponent, int(self.scale_factor.min)), int(self.scale_factor.max)))

    def _changed(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        owner: Any = change.get("owner")  # the widget that changed
        if owner is self.scale_factor and float(change["new"]) != self._snapped_sf():
            self._quiet = True  # put the snapped value back on the slider, then run once
            try:
                self.scale_factor.value = self._snapped_sf()
            finally:
                self._quiet = False
        if owner is self.channel:  # only the plot depends on the channel
            self.image.value = self._png()
            self._schedule_followers()
            return
        self.refresh()

    def _png(self) -> bytes:
        from gnaexp.present import plots

        assert self.run_ is not None
        fig = report.overlay_figure(self.run_, channels=[int(self.channel.value)], size=PLOT_SIZE)
        return plots.to_png(fig, dpi=plots.DPI * plots.HIDPI)

    # --- display ----------------------------------------------------------------------------------------------

    def snapshot_html(self) -> str:
        """The current state as static HTML: setting, notes, metrics table, plot (inline PNG), verdict."""
        assert self.run_ is not None
        params = ", ".join(f"{k}={v}" for k, v in self.parameters().items() if k != "record_dir")
        img = base64.b64encode(bytes(self.image.value)).decode("ascii")
        return (f"<div class='{SNAPSHOT_CLASS}'><p><b>Explorer snapshot</b> (static; run the notebook in "
                f"JupyterLab to explore): {escape(params)}, channel {self.channel.value}</p>{self.notes.value}"
                f"{self.table.value}<img alt='overlay of channel {self.channel.value}' width='{self._plot_px[0]}'"
                f" src='data:image/png;base64,{img}'/><div class='gnaexp-verdict'>{self.verdict.value}</div></div>")

    def _snapshot(self) -> Any:
        from IPython.display import HTML

        return HTML(self.snapshot_html())

    def _provenance(self) -> Any:
        assert self.run_ is not None
        return report.provenance(self.run_)

    def _follow(self, render: Any) -> None:
        from IPython.display import display

        handle = display(render(), display_id=True)
        if handle is not None:
            self._followers.append((handle, render))

    def _schedule_followers(self) -> None:
        import asyncio

        if not self._followers:
            return
        try:
            loop = asyncio.get_running_loop()  # the kernel's, while a widget event is handled
        except RuntimeError:
            self._update_followers()
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(FOLLOW_DELAY_S, self._update_followers)

    def _update_followers(self) -> None:
        # Plain HTML outputs, re-sent whole; the widgets themselves are never re-displayed.
        self._pending = None
        for handle, render in self._followers:
            handle.update(render())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.panel._repr_mimebundle_() or {})
        # Where widgets cannot run the snapshot output beside the panel speaks; the panel itself says nothing.
        bundle["text/plain"] = ""
        return bundle

    def show(self) -> None:
        """Display the live panel and, beside it, the static snapshot that follows its state."""
        from IPython.display import display

        display(self)
        self._follow(self._snapshot)

    def show_provenance(self) -> None:
        """Display the environment, parameters and files of the current state; it follows later changes."""
        self._follow(self._provenance)
