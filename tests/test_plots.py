
import io
import numpy as np
import pytest

from gnaexp.present import plots


def _signals(channels=4, length=50, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, size=(1, channels, length)).astype(np.float32)
    emu = ref + rng.normal(0, 1e-3, size=ref.shape).astype(np.float32)
    return ref, emu


def test_overlay_draws_reference_backend_and_error_per_channel():
    ref, emu = _signals()
    fig = plots.overlay(ref, {"gna-emu (emulated)": emu}, reference_label="torch")
    axes = fig.get_axes()
    assert len(axes) == 8  # signal + error axes for each of 4 channels
    signal_ax, error_ax = axes[2], axes[3]  # channel 1
    ref_line, emu_line = signal_ax.get_lines()
    np.testing.assert_allclose(ref_line.get_ydata(), ref[0, 1])
    np.testing.assert_allclose(emu_line.get_ydata(), emu[0, 1])
    np.testing.assert_allclose(error_ax.get_lines()[0].get_ydata(), emu[0, 1].astype(float) - ref[0, 1], atol=1e-9)
    legend = fig.legends[0]  # one legend for the figure, above the plots rather than over the data
    assert [t.get_text() for t in legend.get_texts()] == ["torch", "gna-emu (emulated)"]
    assert axes[0].get_legend() is None


def test_backend_colours_do_not_depend_on_what_else_is_plotted():
    ref, emu = _signals()
    both = plots.overlay(ref, {"openvino:CPU": ref, "gna-emu (emulated)": emu}, channels=[0])
    alone = plots.overlay(ref, {"gna-emu (emulated)": emu}, channels=[0])
    colour = {line.get_label(): line.get_color() for line in both.get_axes()[0].get_lines()}
    assert alone.get_axes()[0].get_lines()[1].get_color() == colour["gna-emu (emulated)"]
    assert colour["openvino:CPU"] != colour["gna-emu (emulated)"]
    assert plots.color_of("import:pack/outputs.npz") == plots.color_of("import:other.npz")


def test_overlay_tick_labels_fit_inside_the_figure():
    """Signed, small error values (−0.25, 0.0001) keep every character: no tick label crosses the left edge."""
    ref, emu = _signals()
    fig = plots.overlay(ref, {"gna-emu (emulated)": emu * 1.0001 - 0.25}, channels=[0], size=(9.4, 3.9))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.get_axes():
        for label in ax.get_yticklabels() + [ax.yaxis.label]:
            if label.get_text():
                assert label.get_window_extent(renderer).x0 >= 0, label.get_text()
    assert all(not t.get_text().startswith("0") or "." in t.get_text() or t.get_text() == "0"
               for ax in fig.get_axes() for t in ax.get_yticklabels())


def test_png_is_rendered_at_twice_its_display_size():
    from PIL import Image
    import io

    ref, emu = _signals()
    fig = plots.overlay(ref, {"a": emu})
    width, height = plots.display_size(fig)
    image = Image.open(io.BytesIO(plots.to_png(fig)))
    assert image.size == (plots.HIDPI * width, plots.HIDPI * height)


def test_overlay_selected_channels_and_errors():
    ref, emu = _signals(channels=6)
    fig = plots.overlay(ref, {"a": emu}, channels=[5])
    assert [ax.get_title() for ax in fig.get_axes() if ax.get_title()] == ["channel 5"]
    with pytest.raises(ValueError, match="out of range"):
        plots.overlay(ref, {"a": emu}, channels=[6])
    with pytest.raises(ValueError, match="differs from the reference"):
        plots.overlay(ref, {"a": emu[:, :3]})


def test_scatter_has_identity_line_and_points():
    ref, emu = _signals()
    fig = plots.scatter(ref, {"openvino:CPU": emu})
    ax = fig.get_axes()[0]
    line = ax.get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert list(x) == list(y)  # y = x
    assert x[0] <= ref.min() and x[-1] >= ref.max()
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (ref.size, 2)
    np.testing.assert_allclose(offsets[:, 0], ref.ravel())


def test_error_histogram_counts_every_sample():
    ref, emu = _signals()
    fig = plots.error_histogram(ref, {"a": emu, "b": ref.copy()}, bins=20)
    patches = fig.get_axes()[0].patches
    assert len(patches) == 2
    for patch in patches:  # a step outline: (x0, 0), (x0, h0), (x1, h0), (x1, h1), …: the heights are the counts
        heights = patch.get_xy()[1:2 * 20 + 1:2, 1]
        assert len(heights) == 20 and heights.sum() == ref.size
    # identical outputs still plot (one degenerate range handled)
    fig2 = plots.error_histogram(ref, {"same": ref.copy()})
    assert len(fig2.get_axes()[0].patches) == 1


def test_sweep_log_axis_and_saturation_marker():
    sfs = [1, 2, 4, 8, 16, 32768]
    fig = plots.sweep(sfs, {"SQNR": [1, 2, 3, 4, 5, float("-inf")]}, saturation_sf=1000.0, current_sf=4)
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log"
    xs = [line.get_xdata()[0] for line in ax.get_lines()[1:]]
    assert 1000.0 in xs and 4 in xs
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("saturates" in s for s in legend)
    with pytest.raises(ValueError, match="values for"):
        plots.sweep(sfs, {"SQNR": [1, 2]})
    with pytest.raises(ValueError, match="positive"):
        plots.sweep([0, 1], {"SQNR": [1, 2]})



def test_png_is_small_and_valid():
    ref, emu = _signals()
    png = plots.to_png(plots.overlay(ref, {"a": emu}))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) < 200_000
    buf = io.StringIO()
    plots.error_histogram(ref, {"a": emu}).savefig(buf, format="svg")
    svg = buf.getvalue()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_titles_stay_put_so_a_draw_measures_no_tick_label_for_them(monkeypatch):
    """A title left to place itself has matplotlib measure every y tick label of its axes at each draw (to lift it
    above tick labels on top, which these axes never have): titles are placed at TITLE_Y, where it would leave
    them, and a draw of a figure without a layout engine measures no tick label box at all."""
    from matplotlib.axis import YAxis

    ref, emu = _signals()
    measured = []
    original = YAxis.get_tightbbox
    monkeypatch.setattr(YAxis, "get_tightbbox", lambda self, *a, **k: measured.append(self) or original(self, *a, **k))
    for fig in (plots.overlay(ref, {"gna-emu (emulated)": emu}, title="t"), plots.scatter(ref, {"x": emu}),
                plots.error_histogram(ref, {"x": emu}), plots.sweep([1.0, 2.0], {"s": [1.0, 2.0]})):
        fig.canvas.draw()
        titled = [ax for ax in fig.get_axes() if ax.get_title()]
        assert titled and all(ax.title.get_position()[1] == plots.TITLE_Y for ax in titled)
    assert measured == []


def test_log_axis_labels_are_parsed_once_for_every_figure():
    """The sweep's log-axis tick labels ($2^{10}$) are mathtext: parsed once, then every later figure of the
    process (each with its own renderer) takes them from the shared parser."""
    from matplotlib.mathtext import MathTextParser

    sfs = [2.0 ** k for k in range(16)]
    plots.warm_up(sfs)
    before = MathTextParser._parse_cached.cache_info()
    png = plots.to_png(plots.sweep(sfs, {"s": list(range(16))}, saturation_sf=3e4, current_sf=2048.0))
    after = MathTextParser._parse_cached.cache_info()
    assert png.startswith(b"\x89PNG") and after.misses == before.misses and after.hits > before.hits


def test_kernels_forked_from_a_warm_process_draw_at_once_without_sharing_its_fonts():
    """Two children forked after ``warm_up`` render the log-axis sweep at the same time, 60 times each: every
    image is the parent's, none fails. Sharing the parent's parsed labels, they shared its fonts' file offset and
    read each other's glyph bytes (FreeType's "too many hints", or a wrong glyph, a few times in such a run)."""
    import hashlib
    import os

    sfs = [2.0 ** k for k in range(16)]
    plots.warm_up(sfs)

    def digest():
        fig = plots.sweep(sfs, {"s": [float(k) for k in range(16)]}, saturation_sf=sfs[-1], current_sf=sfs[0])
        return hashlib.sha256(plots.to_png(fig)).hexdigest()

    want = digest()
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its images' digests, or the error
            os.close(read)
            try:
                report = ",".join(sorted({digest() for _ in range(60)}))
            except Exception as exc:  # noqa: BLE001 — reported to the parent
                report = f"error: {exc}"
            os.write(write, report.encode())
            os._exit(0)
        os.close(write)
        children.append((pid, read))
    for pid, read in children:
        with os.fdopen(read, "rb") as f:
            report = f.read().decode()
        os.waitpid(pid, 0)
        assert report == want
