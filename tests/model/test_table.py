"""The decode table: the starter model tabulated, read by interpolation, used only when it
plays the decoder's notes."""

import concurrent.futures
import time

import numpy as np
import pytest

from rvaed.core.errors import RvaedError
from rvaed.model import table
from rvaed.model.agreement import MIN_AGREEMENT, THRESHOLDS
from rvaed.model.runtime import Decoder
from rvaed.model.table import DecodeTable, coverage


@pytest.fixture(scope="module")
def tabulated(model_dir) -> tuple[Decoder, Decoder]:
    """The starter decoding through its table, and the same model decoding directly (fp32)."""
    decoder = Decoder(model_dir)
    decoder.tabulate()
    return decoder, Decoder(model_dir, int8=False)


def test_the_starter_table_agrees_with_direct_decoding(tabulated):
    decoder, _ = tabulated
    assert decoder.table is not None and decoder.table.usable
    assert decoder.table.agreement >= MIN_AGREEMENT


def test_decode_through_the_table_plays_the_decoders_notes(tabulated):
    decoder, direct = tabulated
    rng = np.random.default_rng(9)
    span = coverage(decoder.manifest.latent)
    low, high = np.array(span.low), np.array(span.high)
    z = low + rng.random((600, 2)) * (high - low)
    read = np.stack([decoder.decode(x, y).to_array() for x, y in z])
    exact = direct.decode_many(z)
    for threshold in THRESHOLDS:
        assert ((read[:, 0] > threshold) == (exact[:, 0] > threshold)).mean() >= MIN_AGREEMENT
    hits = exact[:, 0] > 0.5
    assert np.abs(read[:, 1] - exact[:, 1])[hits].max() * 127 < 4  # velocity, in MIDI steps
    assert np.abs(read[:, 2] - exact[:, 2])[hits].max() < 0.02  # offset, in half steps


def test_at_a_node_the_table_is_the_decoder(tabulated):
    decoder, direct = tabulated
    table = decoder.table
    nodes = coverage(decoder.manifest.latent).grid(table.values.shape[0])[[0, 777, -1]]
    for zx, zy in nodes:
        assert table.lookup(float(zx), float(zy)) == pytest.approx(
            direct.decode_many(np.array([[zx, zy]]))[0], abs=2e-3)  # float16 storage


def test_outside_the_table_decoding_is_direct(tabulated):
    decoder, _ = tabulated
    span = decoder.table.span
    far = (span.high[0] + 1.0, span.low[1] - 1.0)
    assert decoder.table.lookup(*far) is None
    assert decoder.decode(*far).to_array() == pytest.approx(
        decoder.decode_many(np.array([far]))[0], abs=1e-6)


def test_a_table_too_coarse_to_agree_is_not_used(model_dir):
    decoder = Decoder(model_dir, int8=False)
    coarse = DecodeTable.build(decoder.decode_many, decoder.manifest.latent, grid=3)
    assert coarse.agreement < MIN_AGREEMENT and not coarse.usable


def test_a_bent_decoder_decodes_directly_until_tabulated(tabulated):
    decoder, _ = tabulated
    bent = decoder.bent(0.3, seed=1)
    assert bent.table is None and decoder.table is not None
    bent.tabulate()
    assert bent.table is not None
    z = decoder.manifest.latent.z_of(0.4, 0.6)
    assert bent.decode(*z).to_array() == pytest.approx(
        bent.decode_many(np.array([z]))[0], abs=0.02)


def test_a_stop_ends_a_build_under_way_at_once(model_dir):
    """A stopping daemon kills the build process: the build gives up in seconds, whatever
    the build would have taken (minutes on a slow machine)."""
    decoder = Decoder(model_dir)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        building = pool.submit(decoder.tabulate)
        while not table._building and not building.done():
            time.sleep(0.005)
        table.end_builds()
        with pytest.raises(RvaedError, match="decode table: not built: the process ended"):
            building.result(timeout=30)
    assert decoder.table is None and not table._building
