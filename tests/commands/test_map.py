"""`rvaed map`: the labelled latent map (voices, x/y as the pad sends them, model, point),
drawn from the same decoded tiles as the web page's pad."""

import numpy as np

from rvaed.cli import main
from rvaed.core.font import BITMAPS, HEIGHT, draw_text, text_width
from rvaed.model import latentmap
from rvaed.model.latentmap import GAP_PX, HIT, INK, MARK, STEP_PX, VOICE_PX, Layout, draw_map
from rvaed.model.runtime import Decoder


def test_the_map_labels_voices_axes_model_and_point(model_dir, tmp_path):
    decoder = Decoder(model_dir)
    image = draw_map(decoder, 4, (0.0, 1.0))
    layout = Layout(decoder.kit.names, decoder.grid.steps, 4)
    assert image.shape == (layout.height, layout.width, 3)
    title = np.zeros_like(image)
    draw_text(title, 12, 12, f"model {decoder.manifest.name}", INK, 2)
    drawn = (title == INK).all(axis=2)
    assert drawn.any() and ((image == INK).all(axis=2) | ~drawn).all(), "title missing"
    top, left = layout.tile(0, 0)
    name = decoder.kit.names[0]
    label = image[top:top + VOICE_PX, left - GAP_PX - text_width(name):left - GAP_PX]
    assert (label != 0).any(), "no voice name beside the first row"
    below = image[layout.bottom:, left:left + layout.tile_w]
    assert (below == INK).all(axis=2).any(), "no x value under the first column"
    ring_top, ring_left = layout.pixel(0.0, 1.0)  # the point marked: the top-left tile's centre
    assert (ring_top, ring_left) == (top + layout.tile_h // 2, left + layout.tile_w // 2)
    assert (image[ring_top, ring_left] == MARK).all()
    assert STEP_PX >= 5 and VOICE_PX >= 10, "cells too small to read on a phone"
    output = tmp_path / "map.png"
    assert main(["map", "--model", str(model_dir), "--size", "3", "--point", "0.2", "0.8",
                 "-o", str(output)]) == 0
    assert output.read_bytes().startswith(b"\x89PNG")


def test_tiles_are_the_decoded_patterns_where_the_pad_sends_them(model_dir):
    decoder = Decoder(model_dir)
    tiles = latentmap.decode_tiles(decoder, 3)
    assert np.allclose(tiles[2, 2], decoder.decode_xy(1.0, 0.0).onsets, atol=1e-5)
    image = draw_map(decoder, 3, labels=False)
    layout = Layout(decoder.kit.names, decoder.grid.steps, 3, labels=False)
    top, left = layout.tile(2, 2)
    voice, step = np.unravel_index(np.argmax(tiles[2, 2]), tiles[2, 2].shape)
    pixel = image[top + voice * VOICE_PX + 1, left + step * STEP_PX + 1].astype(float)
    assert tiles[2, 2][voice, step] > 0.9 and np.abs(pixel - HIT).max() < 30


def test_the_font_draws_every_glyph_in_its_box():
    image = np.zeros((HEIGHT, text_width("A") + 2, 3), np.uint8)
    draw_text(image, 1, 0, "a", (255, 255, 255))  # drawn upper-cased
    assert ((image[:, 1:6, 0] > 0) == BITMAPS["A"]).all() and not image[:, 0].any()
    assert all(bitmap.shape == (HEIGHT, 5) for bitmap in BITMAPS.values())
