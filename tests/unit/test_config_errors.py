"""Config errors read as one line that names the full key and the nearest real key or option."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from stable_baselines3 import PPO

from experiments.agent_values import check_agent_values
from experiments.build import check, make_agent, make_env, make_vec_env
from experiments.errors import FULL_ERROR, HINT, ConfigError, explain, run
from hardware.modbus import ModbusTimeout


def composition_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigCompositionException) as caught, initialize_config_module("configs", version_base="1.3"):
        compose("train", overrides=overrides)
    message = explain(caught.value)
    assert message is not None
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("override", "start"),
    [
        ("agent.learnin_rate=1", "agent.learnin_rate: no such key (did you mean agent.learning_rate?)"),
        ("total_timestep=5", "total_timestep: no such key (did you mean total_timesteps?)"),
        ("final.continuing_day=1", "final.continuing_day: no such key (did you mean final.continuing_days?)"),
        ("scenario=brakedown_wave", "scenario=brakedown_wave: no such option (did you mean breakdown_wave?)"),
    ],
)
def test_a_typo_names_the_full_key_and_the_nearest_real_one(override, start):
    assert composition_error([override]).startswith(start)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "hydra/launcher=submitit_locl",
            "hydra/launcher=submitit_locl: no such option (did you mean submitit_local?); "
            "options: basic, cluster, joblib, submitit_local, submitit_slurm",
        ),
        ("hydra/sweeper=optna", "hydra/sweeper=optna: no such option (did you mean optuna?); options: basic, optuna"),
    ],
)
def test_a_hydra_group_lists_hydras_and_its_plugins_options(override, message):
    """Only the shipped files were listed: `options: cluster` for a launcher, nothing for a sweeper."""
    assert composition_error([override]) == message


def test_a_far_typo_suggests_nothing():
    assert "did you mean" not in composition_error(["agent.zzzz=1"])


def compose_train(overrides: list[str]):
    with initialize_config_module("configs", version_base="1.3"):
        return compose("train", overrides=["n_envs=1", *overrides])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.n_steps=many", "agent.n_steps: expected a number, got 'many'"),
        ("+agent.gama=0.9", r"agent.gama: not a parameter here \(did you mean agent.gamma\?\)"),
    ],
)
def test_a_value_sb3_refuses_names_its_key(override, message):
    cfg = compose_train([override])
    venv = make_vec_env(cfg)
    try:
        with pytest.raises(ConfigError, match=message):
            make_agent(cfg, venv, None)
    finally:
        venv.close()


def test_a_task_argument_gymnasium_refuses_names_its_key():
    cfg = compose_train(["+task.kwargs.wieghts={}"])
    with pytest.raises(
        ConfigError, match=r"task.kwargs.wieghts: not a parameter here \(did you mean task.kwargs.weights\?\)"
    ):
        make_env(cfg)


def test_other_errors_are_not_config_errors():
    assert explain(RuntimeError("boom")) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed: must be a whole number >= 0, got -1"),
        ("seed=1.5", "seed: must be a whole number >= 0, got 1.5"),
        ("torch_threads=abc", "torch_threads: must be a positive whole number, got 'abc'"),
        ("evaluation.every_steps=abc", "evaluation.every_steps: must be a positive whole number, got 'abc'"),
        ("evaluation.seed=1.5", "evaluation.seed: must be a whole number >= 0, got 1.5"),
        ("checkpoint_every_steps=0", "checkpoint_every_steps: must be a positive whole number, got 0"),
        ("final.seed=abc", "final.seed: must be a whole number >= 0, got 'abc'"),  # read only after training
        ("final.continuing_days=abc", "final.continuing_days: must be a positive number, got 'abc'"),
        ("normalize.clip_obs=-1", "normalize.clip_obs: must be a positive number, got -1"),
        ("normalize.enabled=no", "normalize.enabled: must be true or false, got 'no'"),  # a non-empty string is true
        ("progress_bar=abc", "progress_bar: must be true or false, got 'abc'"),
        (  # what a run keeps (ARS keep_best) and a sweep optimises was scored on the held-out seeds
            "evaluation.seed=20000",
            "evaluation.seed: the evaluation seeds (20000, 3 episodes) share seeds 20000-20002 with the final "
            "table's held-out seeds (final.seed 20000, final.episodes 10): a policy kept or a sweep's best picked "
            "on them would be scored on them; keep the two apart",
        ),
        (
            "+evaluation.every_step=10",  # added with `+`, as the unknown-key error suggests: nothing read it
            "evaluation.every_step: no such setting, nothing reads it (did you mean evaluation.every_steps?)",
        ),
    ],
)
def test_a_run_setting_of_the_wrong_type_is_refused_before_any_work(override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check(compose_train([override]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # each taken by SB3 when the algorithm is built, and a traceback after the first rollout before this check
        (["agent.ent_coef=abc"], "agent.ent_coef: expected a number, got 'abc'"),
        (["agent.n_epochs=0"], "agent.n_epochs: must be a positive whole number, got 0"),
        (["agent.batch_size=1.5"], "agent.batch_size: expected a whole number, got 1.5"),
        (["agent.gamma=2"], "agent.gamma: must be in [0, 1], got 2"),
        (["agent.n_epochs=5.0"], "agent.n_epochs: expected a whole number, got 5.0"),  # SB3 counts with it
        (["agent=sac", "agent.buffer_size=1e6"], "agent.buffer_size: expected a whole number, got 1000000.0"),
        (["agent.gae_lambda=-0.1"], "agent.gae_lambda: must be in [0, 1], got -0.1"),
        (["agent.learning_rate=-1"], "agent.learning_rate: must be in (0, inf), got -1"),
        (["agent.learning_rate=inf"], "agent.learning_rate: must be a finite number, got inf"),
        (["agent=sac", "agent.tau=abc"], "agent.tau: expected a number, got 'abc'"),
        (["agent=sac", "agent.gradient_steps=-2"], "agent.gradient_steps: must be a whole number >= 0, got -2"),
        (
            ["task=inventory", "agent=dqn", "agent.exploration_fraction=abc"],
            "agent.exploration_fraction: expected a number, got 'abc'",
        ),
        (
            ["task=inventory", "agent=dqn", "agent.train_freq=0"],
            "agent.train_freq: must be a positive whole number, got 0",
        ),
        (
            ["agent.policy_kwargs.net_arch=abc"],
            "agent.policy_kwargs.net_arch: expected layer widths, a list of positive whole numbers (or one per "
            "network, {pi: [...], vf: [...]}), got 'abc'",
        ),
        (
            ["agent.policy_kwargs.net_arch=[64,0]"],
            "agent.policy_kwargs.net_arch: expected layer widths, a list of positive whole numbers (or one per "
            "network, {pi: [...], vf: [...]}), got [64, 0]",
        ),
        (
            ["task=inventory", "agent=dqn", "agent.train_freq=[4,epoch]"],
            "agent.train_freq: expected a positive whole number or [count, step|episode], got [4, 'epoch']",
        ),
        (["+agent.target_kl=abc"], "agent.target_kl: expected a number, got 'abc'"),  # its default is None
        (
            ["agent=sac", "+agent.target_entropy=abc"],  # SB3 said only "could not convert string to float: 'abc'"
            "agent.target_entropy: expected a number or 'auto' (minus the action dimension), got 'abc'",
        ),
        (
            ["agent=sac", "+agent.target_entropy=true"],  # SB3 took it as 1.0
            "agent.target_entropy: expected a number or 'auto' (minus the action dimension), got True",
        ),
        (
            ["agent=sac", "+agent.ent_coef=auto_0"],
            "agent.ent_coef: expected a number, 'auto' or 'auto_<initial value above 0>' (learned, from 1 or from "
            "the value given), got 'auto_0'",
        ),
        (
            ["agent=sac", "+agent.ent_coef=[0.1]"],
            "agent.ent_coef: expected a number, 'auto' or 'auto_<initial value above 0>' (learned, from 1 or from "
            "the value given), got [0.1]",
        ),
        (["+agent.clip_range_vf=abc"], "agent.clip_range_vf: expected a number, got 'abc'"),
        (["+agent.target_kl=-0.01"], "agent.target_kl: must be in (0, inf), got -0.01"),
        (["agent.clip_range=-0.2"], "agent.clip_range: must be in (0, inf), got -0.2"),
        (["+agent.policy_kwargs.log_std_init=abc"], "agent.policy_kwargs.log_std_init: expected a number, got 'abc'"),
        (
            ["+agent.policy_kwargs.activation_fn=relu"],
            "agent.policy_kwargs.activation_fn: expected a class, e.g. {_target_: hydra.utils.get_class, "
            "path: torch.nn.modules.activation.Tanh}, got 'relu'",
        ),
    ],
)
def test_an_algorithm_setting_sb3_reads_only_in_training_is_refused_before_any_work(overrides, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check(compose_train(overrides))


def test_the_shipped_run_settings_pass():
    check(compose_train(["final.continuing_days=0.5", "normalize.clip_obs=5"]))
    check(compose_train(["agent=sac", "+agent.ent_coef=auto", "agent.gradient_steps=-1"]))
    check(compose_train(["agent=sac", "+agent.ent_coef=auto_0.1", "+agent.target_entropy=-2.5"]))
    check(compose_train(["agent=sac", "+agent.ent_coef=0.05", "+agent.target_entropy=auto"]))
    check(compose_train(["agent.gamma=0", "agent.ent_coef=-0.001", "agent.policy_kwargs.net_arch=null"]))  # SB3 trains
    schedule = "{_target_:stable_baselines3.common.utils.get_linear_fn,start:3.0e-4,end:1.0e-5,end_fraction:1.0}"
    check(compose_train(["~agent.learning_rate", f"+agent.learning_rate={schedule}"]))  # built by instantiate
    check(compose_train(["task=inventory", "agent=dqn", "agent.train_freq=[1,episode]"]))
    check(compose_train(["+agent.target_kl=null", "+agent.clip_range_vf=0.2"]))  # None: SB3's default
    check(compose_train(["task=inventory", "agent=dqn", "+agent.max_grad_norm=0.5"]))  # a float defaulting to 10
    relu = "{_target_:hydra.utils.get_class,path:torch.nn.ReLU}"
    check(
        compose_train(
            [f"+agent.policy_kwargs.activation_fn={relu}", "agent=sac", "+agent.policy_kwargs.log_std_init=-2.5"]
        )
    )


def test_run_ends_a_config_or_line_error_with_one_line_and_lets_other_errors_through(monkeypatch):
    monkeypatch.delenv(FULL_ERROR, raising=False)
    where = "127.0.0.1:5020 device 1 input 0-124"

    def raises(exc: Exception) -> Callable[[], None]:
        def main() -> None:
            raise exc

        return main

    with pytest.raises(SystemExit) as ended:
        run(raises(ModbusTimeout(f"{where}: no answer within 0.5 s")))
    assert ended.value.code == f"line error: {where}: no answer within 0.5 s"  # a text: printed, status 1
    with pytest.raises(SystemExit) as ended:
        run(raises(ConfigError("episodes: must be a whole number >= 1, got 0")))
    assert ended.value.code == f"config error: episodes: must be a whole number >= 1, got 0 ({HINT})"
    with pytest.raises(KeyError):
        run(raises(KeyError("a bug, not a config or line error")))
    assert FULL_ERROR not in os.environ


def test_run_ends_on_ctrl_c_with_one_line_and_status_130(monkeypatch, capsys):
    monkeypatch.delenv(FULL_ERROR, raising=False)

    def main() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as ended:
        run(main)
    assert ended.value.code == 130
    assert capsys.readouterr().err == "interrupted: what the run wrote until now stays in its folder\n"


def test_layer_widths_given_per_network_are_checked_each():
    accepted = inspect.signature(PPO).parameters
    check_agent_values({"policy_kwargs": {"net_arch": {"pi": [32], "vf": [64, 64]}}}, accepted)
    with pytest.raises(ConfigError, match=r"net_arch: expected layer widths.*got \{'pi': \[32\], 'vf': \[0\]\}$"):
        check_agent_values({"policy_kwargs": {"net_arch": {"pi": [32], "vf": [0]}}}, accepted)


@pytest.mark.parametrize(
    ("override", "by"),
    [
        ("+agent.seed=5", "the run's seed (seed=..., at the top level)"),
        ("+agent.device=cuda", "cpu (the platform's torch build)"),
        ("+agent.verbose=1", "0 (the run logs its own progress)"),
        ("+agent.tensorboard_log=tb", "the run folder's tb/"),
    ],
)
def test_an_algorithm_setting_the_run_passes_itself_is_refused_not_dropped(override, by):
    """`make_agent` passes these over the agent config's: set there, they were recorded in the run and ignored."""
    key = override[1:].split("=")[0]
    message = f"{key}: the run sets it, not the agent config: {by}; remove {key}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check(compose_train([override]))
