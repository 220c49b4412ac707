"""The training loop on real windows (Groove MIDI Dataset files in tests/data/groove)."""

import math

import numpy as np
import pytest
import torch
from checks import DATA

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.training.dataset import load_dataset
from rvaed.training.loop import (
    batches,
    collapse_note,
    encode_means,
    evaluate,
    frequency_baseline,
    onset_f1,
    pad_patterns,
    reconstruct,
    split,
    train,
    validate,
)
from rvaed.training.network import RhythmVAE
from rvaed.training.options import IngestOptions, ModelConfig, TrainOptions

FUNK = DATA / "groove/drummer1/session1/1_funk_80_beat_4-4.mid"
BEATS = sorted((DATA / "groove").glob("*/*/*_beat_4-4.mid"))
TINY = ModelConfig(encoder_hidden=(32,), decoder_hidden=(32,))


@pytest.fixture(scope="module")
def funk() -> np.ndarray:
    return load_dataset([FUNK], IngestOptions(load_kit("gmd"))).windows


def test_onset_f1_counts_hits():
    target = np.zeros((1, 2, 4))
    target[0, 0, :2] = 1  # two hits
    predicted = np.zeros((1, 2, 4))
    predicted[0, 0, 0] = predicted[0, 1, 3] = 0.9  # one right, one wrong, one missed
    assert onset_f1(predicted, target) == pytest.approx(2 * 1 / (2 * 1 + 2))
    assert onset_f1(target, target) == 1.0
    assert onset_f1(np.zeros_like(target), np.zeros_like(target)) == 1.0


def test_frequency_baseline_marks_cells_hit_in_most_windows():
    windows = np.zeros((4, 3, 2, 3), np.float32)
    windows[:3, 0, 0, 0] = 1  # 3 of 4: in the baseline
    windows[:2, 0, 1, 2] = 1  # 2 of 4: not more than half
    assert frequency_baseline(windows).tolist() == [[1, 0, 0], [0, 0, 0]]


def test_few_windows_fill_a_batch_and_no_batch_has_one_window():
    rng = np.random.default_rng(0)
    (only,) = batches(2, 64, rng)
    assert len(only) == 64 and sorted(set(only)) == [0, 1]
    assert np.bincount(only).tolist() == [32, 32]
    sizes = [len(b) for b in batches(129, 64, rng)]
    assert sizes == [64, 65]
    assert sorted(np.concatenate(batches(129, 64, rng))) == list(range(129))


def test_one_window_trains_without_nan_and_says_it_did_not_split(funk):
    result = train(funk[:1], TrainOptions(epochs=5, model=TINY))
    losses = [(h["loss"], h["val_loss"]) for h in result.history]
    assert len(losses) == 5 and all(math.isfinite(v) for pair in losses for v in pair)
    assert (result.train_windows, result.val_windows) == (1, 1)
    assert any("too few" in note for note in result.notes)
    assert np.isfinite(reconstruct(result.model, funk[:1])).all()


def test_two_windows_are_reproduced_by_the_paper_sized_model(funk):
    two = funk[[0, 12]]
    assert onset_f1(two[0, 0], two[1, 0]) < 0.9  # two different grooves
    result = train(two, TrainOptions(epochs=150, patience=None))
    out = reconstruct(result.model, two)
    for i in range(2):
        assert onset_f1(out[i, 0], two[i, 0]) >= 0.95


def test_split_holds_out_a_sixth(funk):
    result = train(funk, TrainOptions(epochs=1, model=TINY))
    assert result.val_windows == round(len(funk) / 6)
    assert result.train_windows + result.val_windows == len(funk)


def test_validation_holds_out_whole_files():
    data = load_dataset(BEATS, IngestOptions(load_kit("gmd"), workers=1))
    files = {file for file, _ in data.sources}
    assert len(files) >= 3
    for seed in range(8):
        held = split(len(data.sources), data.sources, 2, TrainOptions(seed=seed),
                     np.random.default_rng(seed), [])
        trained = {data.sources[i][0] for i in held.train}
        validated = {data.sources[i][0] for i in held.val}
        assert held.by == "file" and not trained & validated
        assert trained | validated == files and len(validated) == held.files
        assert len(held.train) + len(held.val) == len(data.sources) >= 2 * len(held.val)
    result = train(data.windows, TrainOptions(epochs=1, model=TINY), sources=data.sources,
                   span=2)
    assert result.validation["by"] == "file" and result.validation["windows"] == result.val_windows


def shares_a_bar(sources, held, span) -> bool:
    """Whether a training window and a validation window of one file overlap."""
    return any(file == other and abs(bar - other_bar) < span
               for file, bar in (sources[i] for i in held.train)
               for other, other_bar in (sources[i] for i in held.val))


def test_one_file_is_split_into_a_block_and_its_overlaps_are_dropped(funk):
    sources = [("funk", bar) for bar in range(1, len(funk) + 1)]  # windows start every bar
    for seed in range(8):
        held = split(len(funk), sources, 2, TrainOptions(), np.random.default_rng(seed), [])
        bars = sorted(sources[i][1] for i in held.val)
        assert held.by == "block" and bars == list(range(bars[0], bars[0] + len(bars)))
        assert len(bars) == round(len(funk) / 6) and not shares_a_bar(sources, held, 2)
        inside = bars[0] > 1 and bars[-1] < len(funk)  # neighbours on both sides
        assert held.dropped == (2 if inside else 1)
        assert len(held.train) + len(held.val) + held.dropped == len(funk)


def test_a_file_with_most_windows_is_split_into_a_block():
    sources = [("big", bar) for bar in range(1, 41)] + [("small", bar) for bar in (1, 3, 5)]
    seen = set()
    for seed in range(12):
        held = split(len(sources), sources, 4, TrainOptions(), np.random.default_rng(seed), [])
        seen.add(held.by)
        assert not shares_a_bar(sources, held, 4)
        assert len(held.train) >= len(sources) / 2
        if held.by == "file":
            assert {sources[i][0] for i in held.val} == {"small"}
    assert seen == {"file", "block"}


def test_the_kept_weights_are_the_best_epochs(funk):
    few = funk[:10]  # fewer than min_split_windows: validated on all of them
    options = TrainOptions(epochs=12, patience=None, learning_rate=0.05, model=TINY)
    result = train(few, options)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses)) and result.val_windows == 10
    kept, _ = validate(result.model, torch.from_numpy(few), options)
    assert kept == pytest.approx(min(losses), abs=1e-3)
    assert max(losses) > min(losses)  # there was something to choose from


def test_early_stopping_stops_patience_epochs_after_the_best(funk):
    options = TrainOptions(epochs=300, patience=3, learning_rate=0.03, model=TINY)
    result = train(funk, options)
    assert result.stopped == "early-stopped"
    assert len(result.history) == result.best_epoch + 3
    assert result.best["val_loss"] == min(h["val_loss"] for h in result.history)


def test_same_seed_same_run_other_seed_other_run(funk):
    def run(seed):
        return [h["loss"] for h in train(funk, TrainOptions(epochs=3, seed=seed,
                                                            model=TINY)).history]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_cancel_keeps_the_best_so_far(funk):
    seen = []
    result = train(funk, TrainOptions(epochs=100, model=TINY), on_progress=seen.append,
                   cancelled=lambda: len(seen) >= 2)
    assert result.stopped == "cancelled"
    assert len(result.history) == 2 and result.best_epoch <= 2
    assert [p.epoch for p in seen] == [1, 2] and seen[-1].eta > 0
    assert 0 <= seen[-1].val_onset_f1 <= 1


def test_continuing_starts_from_the_given_weights(funk):
    first = train(funk, TrainOptions(epochs=20, model=TINY))
    before = first.best["val_loss"]
    again = train(funk, TrainOptions(epochs=1, model=TINY), model=first.model)
    assert again.history[0]["val_loss"] < before * 1.5
    fresh = train(funk, TrainOptions(epochs=1, model=TINY))
    assert again.history[0]["val_loss"] < fresh.history[0]["val_loss"]


def test_a_model_of_another_shape_cannot_continue(funk):
    first = train(funk, TrainOptions(epochs=1, model=TINY))
    with pytest.raises(RvaedError, match="8 voices x 32 steps"):
        train(funk[:, :, :8], TrainOptions(epochs=1, model=TINY), model=first.model)


def test_settings_that_cannot_train_are_refused():
    with pytest.raises(RvaedError, match="batch_size: expected an integer >= 2, got 1"):
        TrainOptions(batch_size=1)
    with pytest.raises(RvaedError, match="seed: expected an integer from 0 to"):
        TrainOptions(seed=-1)


def test_bad_windows_are_refused():
    with pytest.raises(RvaedError, match="N >= 1"):
        train(np.zeros((0, 3, 9, 32), np.float32), TrainOptions())
    bad = np.zeros((2, 3, 9, 32), np.float32)
    bad[0, 1, 0, 0] = np.nan
    with pytest.raises(RvaedError, match="not finite"):
        train(bad, TrainOptions())


def test_evaluate_reports_model_and_baseline(funk):
    result = train(funk, TrainOptions(epochs=2, model=TINY))
    held_out, seen = funk[-6:], funk[:-6]
    figures = evaluate(result.model, held_out, seen)
    assert figures["windows"] == 6
    assert figures["onset_f1"] == onset_f1(reconstruct(result.model, held_out)[:, 0],
                                           held_out[:, 0])
    # a training set of one groove repeated: the baseline is that groove, exactly
    same = np.repeat(funk[:1], 5, axis=0)
    assert evaluate(result.model, funk[:1], same)["baseline_onset_f1"] == 1.0
    assert evaluate(result.model, funk[5:6], same)["baseline_onset_f1"] < 1.0
    assert encode_means(result.model, funk).shape == (len(funk), 2)


def test_a_pad_of_one_pattern_is_called_a_collapse(funk):
    model = RhythmVAE(funk.shape[2], funk.shape[3], TINY)
    with torch.no_grad():
        for parameter in model.decoder.parameters():
            parameter.zero_()  # every point decodes to the same pattern
    assert pad_patterns(model, funk) == 1
    distinct = len({w[0].tobytes() for w in funk > 0.5})
    assert f"only 1 distinct pattern(s) from {distinct} distinct training" in collapse_note(1, funk)


def test_three_loops_are_three_places_on_the_pad(funk):
    three = funk[[0, 12, 24]]
    result = train(three, TrainOptions(epochs=150, patience=None))
    found = pad_patterns(result.model, three)
    assert found >= 3 and collapse_note(found, three) is None
