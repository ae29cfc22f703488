"""Settings mistakes end ``python -m gpa_titan.train`` with one ``error:`` line naming the
file or key and the fix, exit code 2 and no traceback (all fail before or at start-up,
except the truncated shard, which fails a few steps into training)."""

import gzip
import re
import shutil
import subprocess

from gpa_titan.paths import DEBUG_CONFIG
from helpers import REPO, process_env, tiny_args, torchrun_cmd, trainer_cmd

DEBUG_TEXT = open(DEBUG_CONFIG).read()


def edited(tmp_path, old: str, new: str, name: str = "bad.toml") -> tuple[str, int]:
    """debug_cpu.toml with the line starting ``old`` replaced by ``new``; (path, its line number)."""
    lines = DEBUG_TEXT.splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.startswith(old)]
    lines[index] = new
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path), index + 1


def train_with(tmp_path, demo_assets, config: str | None, *extra: str, nproc: int = 1, steps: int = 2):
    """The trainer on the tiny demo run, with ``config`` as --job.config_file (None: no config at all)."""
    args = tiny_args(str(tmp_path / "run"), demo_assets, steps, "--checkpoint.no-enable", *extra)
    i = args.index("--job.config_file")
    args = args[:i] + args[i + 2 :] if config is None else [*args[:i + 1], config, *args[i + 2 :]]
    cmd = trainer_cmd(1, args) if nproc == 1 else torchrun_cmd(nproc, ["-m", "gpa_titan.train", *args])
    return subprocess.run(cmd, cwd=REPO, env=process_env(), capture_output=True, text=True, timeout=300)


def one_error(proc, code: int = 2) -> str:
    """The single ``error:`` line of a run that must have failed with ``code`` and no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == code and len(errors) == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def test_string_where_a_number_belongs(tmp_path, demo_assets):
    path, line = edited(tmp_path, "lr = ", 'lr = "fast"')
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert error.startswith(f'error: {path}, line {line}: [optimizer] lr = "fast" is a string, but [optimizer] lr '
                            "must be a number")


def test_quoted_number_says_remove_the_quotes(tmp_path, demo_assets):
    path, line = edited(tmp_path, "steps = 400", 'steps = "400"')
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert f"{path}, line {line}: [training] steps" in error and "remove the quotes, steps = 400" in error


def test_value_outside_a_fixed_choice_lists_the_choices(tmp_path, demo_assets):
    path, line = edited(tmp_path, "decay_type =", 'decay_type = "cosin"')
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert f"line {line}: [lr_scheduler] decay_type" in error and 'one of "linear", "sqrt", "cosine"' in error


def test_empty_config_file(tmp_path, demo_assets):
    path = tmp_path / "empty.toml"
    path.write_text("# nothing here yet\n")
    error = one_error(train_with(tmp_path, demo_assets, str(path)))
    assert error.startswith(f"error: {path} is empty") and "configs/debug_cpu.toml" in error


def test_missing_config_file(tmp_path, demo_assets):
    path = str(tmp_path / "nope.toml")
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert error.startswith(f"error: --job.config_file {path}: no such file. Check the path")


def test_no_config_file_at_all(tmp_path, demo_assets):
    error = one_error(train_with(tmp_path, demo_assets, None))
    assert error.startswith("error: no --job.config_file given") and "--job.config_file configs/" in error


def test_toml_syntax_error_names_the_line(tmp_path, demo_assets):
    path, line = edited(tmp_path, "mu_y = ", "mu_y = 0.8 0.9")
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert error.startswith(f"error: {path}, line {line}: TOML syntax error") and "'mu_y = 0.8 0.9'" in error


def test_config_without_the_extension_module_says_to_add_it(tmp_path, demo_assets):
    path, _ = edited(tmp_path, "custom_config_module", "# (removed)")
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert error.startswith(f'error: {path} lacks [job] custom_config_module = "gpa_titan.titan.job_config"')
    assert "[optimizer] mu_x" in error and "Add that line under [job]" in error


def test_misspelt_key_suggests_the_right_one(tmp_path, demo_assets):
    path, line = edited(tmp_path, "mu_x = ", "mu_xx = 0.9")
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert f"{path}, line {line}: unknown key [optimizer] mu_xx: did you mean mu_x?" in error


def test_start_up_check_of_the_trainer_is_one_line(tmp_path, demo_assets):
    path, _ = edited(tmp_path, "mu_y = ", "mu_y = 1.5")  # valid TOML and type: the trainer's ConfigError
    error = one_error(train_with(tmp_path, demo_assets, path))
    assert error.startswith("error: [optimizer] mu_y = 1.5 is out of range for GPA-AdamW")


def test_missing_data_folder_is_one_line(tmp_path, demo_assets):
    missing = str(tmp_path / "no_data")
    error = one_error(train_with(tmp_path, demo_assets, DEBUG_CONFIG, "--training.dataset", "c4",
                                 "--training.dataset_path", missing))
    assert error.startswith(f"error: [training] dataset_path = {missing!r} does not exist")


def test_truncated_shard_met_during_training_is_one_line(tmp_path, demo_assets):
    data = tmp_path / "data"
    shutil.copytree(demo_assets, data)
    shard = data / "c4-train.00000-of-00001.json.gz"
    with gzip.open(shard) as f:
        lines = len(f.readlines())
    shard.write_bytes(shard.read_bytes()[:6000])  # a hundred documents or so, then cut
    proc = train_with(tmp_path, demo_assets, DEBUG_CONFIG, "--training.dataset", "c4", "--validation.dataset", "c4",
                      "--training.dataset_path", str(data), "--validation.dataset_path", str(data),
                      "--validation.freq", "1000", steps=1000)
    error = one_error(proc)
    assert error.startswith(f"error: {shard}: the file is truncated: its gzip data ends after line")
    assert 0 < int(re.search(r"after line (\d+)", error).group(1)) < lines
    assert "Re-download this shard" in error
    assert re.search(r"step:\s+5\b", proc.stdout), "it failed while training, not at start-up"


def test_two_ranks_print_the_error_once(tmp_path, demo_assets):
    path, _ = edited(tmp_path, "mu_y = ", "mu_y = 1.5")
    proc = train_with(tmp_path, demo_assets, path, nproc=2)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and errors == [errors[0]] and "mu_y = 1.5 is out of range" in errors[0], proc.stderr
    assert "exitcode  : 2" in proc.stderr, "the rank that failed exited with code 2 (torchrun reports it)"


# ------------------------------------------------------- the start-up table (gpa_titan/titan/start_checks.py)
def refused_at_start(tmp_path, demo_assets, *overrides: str) -> str:
    """The one ``error:`` line of the tiny demo run with ``overrides``, which must stop before step 1."""
    proc = train_with(tmp_path, demo_assets, DEBUG_CONFIG, *overrides)
    error = one_error(proc)
    assert not re.search(r"step:\s+1\b", proc.stdout + proc.stderr), "it trained"
    assert not (tmp_path / "run" / "run_info.json").exists(), "it started the run"
    return error


def test_negative_min_lr_factor_is_refused_at_start(tmp_path, demo_assets):
    error = refused_at_start(tmp_path, demo_assets, "--lr_scheduler.min_lr_factor", "-1.0")
    assert error.startswith("error: [lr_scheduler] min_lr_factor = -1.0 is outside [0, 1]") and "set it in" in error


def test_zero_max_norm_is_refused_at_start(tmp_path, demo_assets):
    error = refused_at_start(tmp_path, demo_assets, "--training.max_norm", "0")
    assert error.startswith("error: [training] max_norm = 0") and "inf" in error


def test_zero_log_freq_is_refused_at_start(tmp_path, demo_assets):
    error = refused_at_start(tmp_path, demo_assets, "--metrics.log_freq", "0")
    assert error.startswith("error: [metrics] log_freq = 0 ") and "--metrics.log_freq" in error


def test_stop_after_steps_without_checkpoints_is_refused_at_start(tmp_path, demo_assets):
    error = refused_at_start(tmp_path, demo_assets, "--job.stop_after_steps", "1")  # train_with: checkpoints off
    assert error.startswith("error: [job] stop_after_steps = 1 ") and "--checkpoint.enable" in error
    assert "--training.steps 1" in error


def test_global_batch_not_a_multiple_of_the_local_batch_is_refused_at_start(tmp_path, demo_assets):
    error = refused_at_start(tmp_path, demo_assets, "--training.global_batch_size", "6")  # local 4, 1 rank
    assert error.startswith("error: [training] global_batch_size = 6 is not a multiple of") and "-1" in error


def test_an_assertion_of_torchtitans_own_config_is_one_line(tmp_path, demo_assets):
    error = one_error(train_with(tmp_path, demo_assets, DEBUG_CONFIG, "--validation.steps", "0"))
    assert error.startswith("error: TorchTitan's own config check refused the settings: validation steps must be "
                            "positive or -1"), error
