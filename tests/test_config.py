"""Configuration: one validated object from TOML and FACELENS_<SECTION>_<KEY> variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.edge.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file():
    cfg = load_config(None, environ={})
    assert cfg.detector.model == "blazeface_full_range" and cfg.detector.tiles == (3, 2)
    assert cfg.emotion.model == "emotion_mini_xception" and cfg.authenticity.model is None


def test_file_values_are_read_and_typed(tmp_path):
    cfg = load_config(write(tmp_path, """
[source]
uri = "rtsp://cam.local/stream"
name = "hall"
[detector]
tiles = [2, 2]
min_score = 0.6
[tracker]
confirm_frames = 5
"""), environ={})
    assert cfg.source.uri.startswith("rtsp://") and cfg.source.name == "hall"
    assert cfg.detector.tiles == (2, 2) and cfg.detector.min_score == 0.6
    assert cfg.tracker.confirm_frames == 5


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, "[detector]\nmin_score = 0.6\n")
    cfg = load_config(path, environ={"FACELENS_DETECTOR_MIN_SCORE": "0.7",
                                     "FACELENS_DETECTOR_TILES": "2x1",
                                     "FACELENS_SOURCE_LATEST_ONLY": "true",
                                     "FACELENS_AUTHENTICITY_MODEL": "my_model",
                                     "FACELENS_EMOTION_MODEL": "",
                                     "FACELENS_CONFIG": "/ignored/here.toml",
                                     "HOME": "/root"})
    assert cfg.detector.min_score == 0.7 and cfg.detector.tiles == (2, 1)
    assert cfg.source.latest_only is True
    assert cfg.authenticity.model == "my_model" and cfg.emotion.model is None


def test_unknown_key_in_file_names_key_file_and_known_keys(tmp_path):
    path = write(tmp_path, "[detector]\nmin_scor = 0.6\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    msg = str(info.value)
    assert "unknown config key 'detector.min_scor'" in msg and str(path) in msg
    assert "min_score" in msg


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'detecter'"):
        load_config(write(tmp_path, "[detecter]\nkind = 'haar'\n"), environ={})


def test_wrong_type_names_key_value_and_file(tmp_path):
    path = write(tmp_path, "[tracker]\nconfirm_frames = 'three'\n")
    with pytest.raises(ConfigError, match=r"config key 'tracker.confirm_frames': .*integer.*"
                                          r"'three'.*in .*config.toml"):
        load_config(path, environ={})


def test_out_of_range_value_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"detector.min_score.*less than 1"):
        load_config(write(tmp_path, "[detector]\nmin_score = 1.5\n"), environ={})
    with pytest.raises(ConfigError, match="tiles must be"):
        load_config(write(tmp_path, "[detector]\ntiles = [0, 2]\n"), environ={})


def test_bad_environment_variables_are_named():
    with pytest.raises(ConfigError, match="FACELENS_DETECTOR_MINSCORE.*no key 'minscore'"):
        load_config(None, environ={"FACELENS_DETECTOR_MINSCORE": "0.5"})
    with pytest.raises(ConfigError, match="FACELENS_NOPE_X: no config section"):
        load_config(None, environ={"FACELENS_NOPE_X": "1"})
    with pytest.raises(ConfigError, match=r"'tracker.iou'.*from environment FACELENS_TRACKER_IOU"):
        load_config(None, environ={"FACELENS_TRACKER_IOU": "high"})


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[detector\n"), environ={})
    with pytest.raises(ConfigError, match="config file not found: .*absent.toml"):
        load_config(tmp_path / "absent.toml", environ={})


def test_models_dir_follows_systemd_state_directory(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/facelens")
    assert str(load_config(None, environ={}).runtime.models_dir) == "/var/lib/facelens/models"


def test_the_example_config_is_valid_and_matches_the_defaults():
    """config.example.toml documents every key with its default: keep it true."""
    from facelens.edge.config import Config

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    cfg = load_config(example, environ={})
    defaults = Config()
    assert cfg.model_dump(exclude={"service": {"device_id"}, "runtime": {"models_dir"}}) == \
        defaults.model_dump(exclude={"service": {"device_id"}, "runtime": {"models_dir"}})
    import tomllib

    documented = tomllib.loads(example.read_text())
    for section, model in Config.model_fields.items():
        keys = set(documented.get(section, {}))
        text = example.read_text()
        if section == "heads":  # a table of head tables, empty by default
            assert "# [heads." in text
            continue
        if section == "cameras":  # a list of tables, empty by default
            assert "# [[cameras]]" in text
            continue
        for key in model.annotation.model_fields:
            assert key in keys or f"# {key} =" in text, f"{section}.{key} undocumented"


def test_secrets_can_come_from_files(tmp_path):
    """An RTSP URL with a password need not sit in the config or the environment."""
    secret = tmp_path / "uri"
    secret.write_text("rtsp://admin:hunter2@cam.local/stream\n")
    cfg = load_config(write(tmp_path, f"[source]\nuri_file = '{secret}'\n"), environ={})
    assert cfg.source.uri == "rtsp://admin:hunter2@cam.local/stream"
    cfg = load_config(None, environ={"FACELENS_SOURCE_URI_FILE": str(secret)})
    assert cfg.source.uri == "rtsp://admin:hunter2@cam.local/stream"
    with pytest.raises(ConfigError, match=r"'source.uri' from environment "
                                          r"FACELENS_SOURCE_URI_FILE: cannot read secret file"):
        load_config(None, environ={"FACELENS_SOURCE_URI_FILE": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="no key 'source.url' to read from a file"):
        load_config(write(tmp_path, f"[source]\nurl_file = '{secret}'\n"), environ={})


def test_tls_files_are_keys_of_their_own_in_the_file(tmp_path):
    """As config.example.toml shows them: paths, not secret indirection."""
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("PEM\n")
    cfg = load_config(write(tmp_path, f"[mqtt]\ntls = true\nca_file = '{tmp_path}/ca.crt'\n"
                            f"cert_file = '{tmp_path}/c.crt'\nkey_file = '{tmp_path}/c.key'\n"
                            f"[web]\ncert_file = '{tmp_path}/c.crt'\n"
                            f"key_file = '{tmp_path}/c.key'\n"), environ={})
    assert cfg.mqtt.ca_file == tmp_path / "ca.crt" and cfg.mqtt.key_file == tmp_path / "c.key"
    assert cfg.web.cert_file == tmp_path / "c.crt"
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config(write(tmp_path, f"[web]\ncert_file = '{tmp_path}/c.crt'\n"), environ={})
    with pytest.raises(ConfigError, match="key_file .*none.key does not exist"):
        load_config(write(tmp_path, f"[mqtt]\ncert_file = '{tmp_path}/c.crt'\n"
                          f"key_file = '{tmp_path}/none.key'\n"), environ={})


def _debug_text(exc: BaseException) -> str:
    """What --debug prints: the whole chain with tracebacks."""
    import traceback

    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("mqtt", [
    "reconnect_min_s = 9\nreconnect_max_s = 2\n",  # fails the whole [mqtt] section
    "port = 'x'\n",
])
def test_no_secret_in_any_message_even_with_debug(tmp_path, mqtt):
    secret = tmp_path / "pw"
    secret.write_text("hunter2-Secret\n")
    path = write(tmp_path, f"[mqtt]\nhost = 'b'\npassword_file = '{secret}'\n{mqtt}")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "hunter2" not in str(err.value)
    assert "hunter2" not in _debug_text(err.value)
    assert "mqtt" in str(err.value)


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe\x00binary\x00\x81", "is not UTF-8 text"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"[source]\nreconnect_max_s = inf\n", "reconnect_max_s"),
    (b"[mqtt]\nreconnect_min_s = nan\n", "reconnect_min_s"),
])
def test_hostile_files_give_one_line(tmp_path, content, expected):
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(path, environ={})
    assert "\n" not in str(err.value) and len(str(err.value)) < 2000


def test_half_a_million_unknown_keys_give_a_short_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[source]\n" + "".join(f"k{i} = 1\n" for i in range(500_000)))
    with pytest.raises(ConfigError, match="unknown config key 'source.k0'") as err:
        load_config(path, environ={})
    text = str(err.value)
    assert len(text) <= 2000 and "and 499995 more" in text


def test_a_binary_secret_file_is_one_line(tmp_path):
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe\x81\x00")
    with pytest.raises(ConfigError, match="secret file .* is not UTF-8 text"):
        load_config(write(tmp_path, f"[mqtt]\npassword_file = '{secret}'\n"), environ={})


def test_the_old_name_of_smoothing_alpha_is_still_read(tmp_path, caplog):
    cfg = load_config(write(tmp_path, "[tracker]\nemotion_alpha = 0.6\n"), environ={})
    assert cfg.tracker.smoothing_alpha == 0.6
    assert "emotion_alpha is now called smoothing_alpha" in caplog.text
    with pytest.raises(ConfigError, match="smoothing_alpha only"):
        load_config(write(tmp_path, "[tracker]\nemotion_alpha = 0.6\nsmoothing_alpha = 0.5\n"),
                    environ={})
