"""Contradictory options fail at start-up with the keys and values, before anything is trained or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptrack.adapt.cli import main
from adaptrack.adapt.config import GROUPS, GateConfig, LossWeights, NetworkConfig, PseudoLabelConfig
from adaptrack.common.errors import ConfigError
from adaptrack.common.training import as_group

from .conftest import TINY_FIT

BAD_OPTIONS = {
    "t2 >= t1": (["--model.pseudo.masking", "dual", "--model.pseudo.threshold", "0.9",
                  "--model.pseudo.lower_threshold", "0.9"], ["model.pseudo.lower_threshold=0.9",
                                                             "model.pseudo.threshold=0.9"]),
    "negative cap": (["--model.pseudo.per_class_cap", "-2"], ["model.pseudo.per_class_cap=-2"]),
    "fraction cap >= 1": (["--model.pseudo.per_class_cap", "1.5"], ["model.pseudo.per_class_cap=1.5"]),
    "total cap 0": (["--model.pseudo.total_cap", "0"], ["model.pseudo.total_cap=0"]),
    "k larger than a class": (["--data.labeled_target.per_class", "500"],
                              ["data.labeled_target.per_class=500", "class '0'"]),
    "expression 2 max <= s": (["--model.weights.schedule", "true", "--model.weights.schedule_start", "0.8",
                               "--model.weights.schedule_stop", "0.8"],
                              ["model.weights.schedule_stop=0.8", "model.weights.schedule_start=0.8"]),
    "padder without labeled target": (["--data.oversample.labeled_target", "true"],
                                      ["data.oversample.labeled_target"]),
    "domain watch without domain classifier": (["--model.method", "source_only", "--model.gate.stop_watch", "domain"],
                                               ["model.gate.stop_watch", "source_only"]),
    "two stages without self-learning": (["--model.method", "dann", "--model.update", "two_stage"],
                                         ["model.update", "dann"]),
    "negative weight": (["--model.weights.domain", "-1"], ["model.weights.domain=-1"]),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_contradictory_options_fail_at_start_up(case: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, expected = BAD_OPTIONS[case]
    assert main(["fit", *TINY_FIT, *args]) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    assert not (workdir / "runs").exists()  # nothing trained or written


def test_labeled_target_folder_with_foreign_classes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_datamodule import make_labeled

    make_labeled(workdir / "lab", ["3", "seven"], per_class=1)
    assert main(["fit", *TINY_FIT, "--data.labeled_target.directory", str(workdir / "lab")]) == 2
    err = capsys.readouterr().err
    assert "seven" in err and "lab" in err
    assert not (workdir / "runs").exists()


def test_unknown_filter_class_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", *TINY_FIT, "--data.image_filter", "nosuch.NoiseFilter"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("name", list(GROUPS))
def test_groups_round_trip_through_plain_dicts(name: str) -> None:
    """Checkpoints hold the groups as dicts; ``as_group`` rebuilds the same frozen dataclass."""
    from adaptrack.common.training import to_plain

    cls = GROUPS[name]
    default = cls()
    assert as_group(cls, to_plain(default), name) == default
    with pytest.raises(ConfigError, match="unknown keys"):
        as_group(cls, {"bogus": 1}, name)


def test_group_values_are_checked_on_construction() -> None:
    with pytest.raises(ConfigError, match=r"model\.pseudo\.threshold"):
        PseudoLabelConfig(threshold=1.2)
    with pytest.raises(ConfigError, match=r"model\.gate\.start_window"):
        GateConfig(start_window=-1)
    with pytest.raises(ConfigError, match=r"model\.network\.preset"):
        NetworkConfig(preset="resnet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="finite"):
        LossWeights(source=float("nan"))
    assert LossWeights().of("minority_shot") == 1.0
    with pytest.raises(KeyError):
        LossWeights().of("entropy")
