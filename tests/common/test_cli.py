"""The CLI plumbing both systems share: trainer defaults, ``--threads``, exit codes."""

from __future__ import annotations

import re

import pytest
import torch
from jsonargparse import Namespace

from adaptrack.common.cli import (
    DEFAULT_THREADS,
    apply_threads_and_log_root,
    check_finite_config,
    exit_code_for,
    run_command,
    trainer_defaults,
)
from adaptrack.common.errors import ConfigError, DataError, MissingDataError
from adaptrack.common.files import check_writable_dir
from adaptrack.common.training import NonFiniteLossError


def test_trainer_defaults_log_under_default_root_dir() -> None:
    adapt = trainer_defaults("runs/adapt", log_every_n_steps=20)
    assert adapt["default_root_dir"] == "runs/adapt" and "callbacks" not in adapt
    track = trainer_defaults("runs/track", "parts", callbacks=[])
    assert track["default_root_dir"] == "runs/track/parts" and track["callbacks"] == []
    assert [lg["init_args"] for lg in track["logger"]] == [{"save_dir": "runs/track/parts", "name": "logs"},
                                                           {"save_dir": "runs/track/parts", "name": "tensorboard"}]


def _config(threads: int | None, root: str, save_dirs: list[str]) -> Namespace:
    loggers = [Namespace(class_path="x", init_args=Namespace(save_dir=d)) for d in save_dirs]
    return Namespace(threads=threads, trainer=Namespace(default_root_dir=root, logger=loggers))


def test_default_loggers_follow_default_root_dir_and_threads_apply() -> None:
    before = torch.get_num_threads()
    try:
        config = _config(DEFAULT_THREADS, "elsewhere", ["runs/track/parts", "my_logs"])
        apply_threads_and_log_root(config, "runs/track")
        assert [lg.init_args.save_dir for lg in config.trainer.logger] == ["elsewhere", "my_logs"]
        assert torch.get_num_threads() == DEFAULT_THREADS
        with pytest.raises(ConfigError, match="threads"):
            apply_threads_and_log_root(_config(0, "runs/track", []), "runs/track")
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("exc", "code"), [
    (DataError("bad", "a.json"), 2), (MissingDataError("missing"), 2), (FileNotFoundError("x"), 2),
    (ConfigError("k: v"), 2), (NonFiniteLossError("nan"), 1), (SystemExit(0), 0), (SystemExit(None), 0),
    (SystemExit(2), 2), (SystemExit("message"), 2), (ValueError("bug"), None),
])
def test_exit_code_for(exc: BaseException, code: int | None) -> None:
    assert exit_code_for(exc) == code


def test_run_command_reports_errors_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def fail(exc: BaseException):
        def command() -> None:
            raise exc
        return command

    assert run_command("adaptrack track run", lambda: None) == 0
    assert run_command("adaptrack track run", lambda: 3) == 3
    assert run_command("adaptrack track run", fail(DataError("zero frames", "empty.gif"))) == 2
    assert capsys.readouterr().err == "adaptrack track run: error: empty.gif: zero frames\n"
    assert run_command("adaptrack adapt fit", fail(NonFiniteLossError("loss became nan"))) == 1
    assert capsys.readouterr().err == "adaptrack adapt fit: training stopped: loss became nan\n"
    with pytest.raises(ValueError, match="bug"):
        run_command("adaptrack adapt fit", fail(ValueError("bug")))


def test_wrapped_usage_errors_are_recognised(capsys: pytest.CaptureFixture[str]) -> None:
    def wrapped() -> None:
        try:
            raise DataError("frame 3: truncated", "clip.json")
        except DataError as exc:
            raise RuntimeError("setup failed") from exc

    assert exit_code_for(RuntimeError("x")) is None
    assert run_command("adaptrack track fit", wrapped) == 2
    assert capsys.readouterr().err == "adaptrack track fit: error: clip.json: frame 3: truncated\n"

    def from_worker() -> None:  # how torch re-raises an error of a DataLoader worker process
        raise DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File ...\nadaptrack.common.errors.DataError: a.jpg: frame file is unreadable\n")

    assert run_command("adaptrack track fit", from_worker) == 2
    assert capsys.readouterr().err == "adaptrack track fit: error: a.jpg: frame file is unreadable\n"

    def bug_while_handling() -> None:
        try:
            raise DataError("bad", "a.png")
        except DataError:
            raise KeyError("a bug") from None

    with pytest.raises(KeyError):
        run_command("adaptrack adapt fit", bug_while_handling)


def test_non_finite_config_values_are_refused_wherever_they_sit() -> None:
    check_finite_config(Namespace(model=Namespace(lr=0.1, sizes=[1.0, 2.0]), flag=True))
    nan_threshold = Namespace(model=Namespace(pseudo=Namespace(threshold=float("nan"))))
    for config, key in [(nan_threshold, "model.pseudo.threshold"),
                        (Namespace(data=Namespace(image_filter=Namespace(class_path="x.Y",
                                                                         init_args=Namespace(sigma=float("inf"))))),
                         "data.image_filter.sigma"),
                        ({"settings": {"gate": float("-inf")}}, "settings.gate"),
                        (Namespace(box=[1.0, float("nan")]), "box[1]")]:
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)}=-?(nan|inf) must be a finite number"):
            check_finite_config(config)


def test_output_folder_check_leaves_nothing_behind(tmp_path) -> None:
    check_writable_dir(tmp_path / "new" / "deeper", "--output")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--output=.*file/out: .*not a folder"):
        check_writable_dir(tmp_path / "file" / "out", "--output")
