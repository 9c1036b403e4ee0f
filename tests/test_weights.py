"""Checkpoints: search order, verification, safe loading, unwrapping, strict fitting, and downloads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from sr_bench import paths
from sr_bench import weights as checkpoint_io
from sr_bench.errors import CheckpointError, DownloadError
from sr_bench.checkpoint_files import catalogue
from sr_bench.models import resolve_model
from sr_bench.zoo import get_spec

from conftest import require_file

LGVAN_FILE = "team18_LGVAN.pth"
RFDN_FILE = "team00_rfdn.pth"
LGVAN_SHA = "fe201971de6fb18e62fd17d7c10817cf406d68b7aa2adb5f00474a066b05e0ec"
RFDN_SHA = "11af8ec8ebd68689e90ef1e29044f9804c72d3bd9f7573820b7b26035782760c"


@pytest.fixture
def lgvan_path(weights_dir: Path) -> Path:
    return require_file(weights_dir / LGVAN_FILE)


@pytest.fixture
def rfdn_path(weights_dir: Path) -> Path:
    return require_file(weights_dir / RFDN_FILE)


@pytest.fixture
def no_env_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No $SRBENCH_WEIGHTS and an empty cwd, so only what a test sets up is found."""
    monkeypatch.delenv("SRBENCH_WEIGHTS", raising=False)
    monkeypatch.delenv(checkpoint_io.URL_BASE_ENV, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def random_state(name: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_spec(name).build().state_dict()


def assert_weights_equal(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = module.state_dict()
    assert own.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(own[k], v), k


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the official checkpoints -------------------------------------------------------------------------------


def test_registry_hashes_match_the_shared_files(lgvan_path, rfdn_path):
    assert sha(lgvan_path) == get_spec("lgvan").checkpoint(4).sha256 == LGVAN_SHA
    assert sha(rfdn_path) == get_spec("rfdn").checkpoint(4).sha256 == RFDN_SHA


def test_lgvan_loads_params_ema_strictly_and_verifies(lgvan_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(lgvan_path.parent))
    loaded = resolve_model("lgvan")
    assert loaded.checkpoint.path == lgvan_path.resolve()
    assert loaded.checkpoint.sha256 == LGVAN_SHA
    assert loaded.checkpoint.verified is True
    assert loaded.checkpoint.key == "params_ema"
    assert loaded.notices == []
    raw = torch.load(lgvan_path, map_location="cpu", weights_only=True)
    assert_weights_equal(loaded.module, raw["params_ema"])
    # the file's two weight sets differ, so the test above tells them apart
    assert any(not torch.equal(raw["params"][k], raw["params_ema"][k]) for k in raw["params"])


def test_rfdn_bare_state_dict_loads_strictly_and_verifies(rfdn_path):
    loaded = resolve_model("rfdn", weights=rfdn_path)
    assert loaded.checkpoint.verified is True
    assert loaded.checkpoint.sha256 == RFDN_SHA
    assert loaded.checkpoint.key is None
    assert loaded.data_range == 255.0
    assert_weights_equal(loaded.module, torch.load(rfdn_path, map_location="cpu", weights_only=True))


def test_pretrained_lgvan_forward_is_finite(lgvan_path):
    loaded = resolve_model("lgvan", weights=lgvan_path)
    with torch.no_grad():
        y = loaded.module(torch.rand(1, 3, 12, 12))
    assert y.shape == (1, 3, 48, 48) and torch.isfinite(y).all()


# --- unwrapping --------------------------------------------------------------------------------------------------


def test_params_ema_preferred_over_params(tmp_path):
    ema, raw = random_state("rfdn", 1), random_state("rfdn", 2)
    path = tmp_path / "both.pth"
    torch.save({"params": raw, "params_ema": ema}, path)
    loaded = resolve_model("rfdn", weights=path)
    assert_weights_equal(loaded.module, ema)
    assert loaded.checkpoint.key == "params_ema"


def test_params_used_when_no_ema(tmp_path):
    state = random_state("rfdn", 3)
    path = tmp_path / "params.pth"
    torch.save({"params": state, "epoch": 7}, path)
    loaded = resolve_model("rfdn", weights=path)
    assert_weights_equal(loaded.module, state)
    assert loaded.checkpoint.key == "params"


def test_spec_key_missing_falls_back_in_the_documented_order(tmp_path):
    state = random_state("lgvan", 0)
    path = tmp_path / "only_params.pth"
    torch.save({"params": state}, path)
    loaded = resolve_model("lgvan", weights=path)
    assert_weights_equal(loaded.module, state)
    assert loaded.checkpoint.key == "params"
    assert f"{path} has no 'params_ema' entry; loaded 'params' (the next key in the documented order)" in loaded.notices


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrappers_and_module_prefix_are_stripped(tmp_path, wrapper):
    state = random_state("rfdn", 4)
    path = tmp_path / f"{wrapper}.pth"
    torch.save({wrapper: {f"module.{k}": v for k, v in state.items()}, "optimizer": {"lr": 1e-3}}, path)
    loaded = resolve_model("rfdn", weights=path)
    assert_weights_equal(loaded.module, state)
    assert loaded.checkpoint.key == wrapper


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        resolve_model("rfdn", weights=path)
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="is not a state dict: expected tensors or one of params_ema"):
        resolve_model("rfdn", weights=path)


def test_safetensors_loads(tmp_path):
    state = random_state("rfdn", 5)
    path = tmp_path / "rfdn.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = resolve_model("rfdn", weights=path)
    assert_weights_equal(loaded.module, state)
    assert loaded.checkpoint.sha256 == sha(path)
    assert loaded.checkpoint.verified is False  # not the official file


def test_invalid_safetensors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a valid .safetensors file"):
        resolve_model("rfdn", weights=path)


# --- search order ------------------------------------------------------------------------------------------------


def test_search_order(tmp_path, monkeypatch, no_env_weights):
    spec = get_spec("rfdn").checkpoint(4)
    env_dir, cache = tmp_path / "env", tmp_path / "cache_root"
    monkeypatch.setenv("SRBENCH_CACHE", str(cache))
    places = {
        "env": env_dir / RFDN_FILE,
        "cwd": Path.cwd() / "weights" / RFDN_FILE,
        "cache": cache / "weights" / RFDN_FILE,
    }
    for p in places.values():
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(env_dir))

    assert checkpoint_io.find_checkpoint(spec, explicit) == explicit
    assert checkpoint_io.find_checkpoint(spec) == places["env"]
    places["env"].unlink()
    assert checkpoint_io.find_checkpoint(spec).resolve() == places["cwd"]
    places["cwd"].unlink()
    assert checkpoint_io.find_checkpoint(spec) == places["cache"]
    places["cache"].unlink()
    assert checkpoint_io.find_checkpoint(spec) == paths.builtin_weights_dir() / RFDN_FILE  # shipped, searched last


def test_resolve_model_uses_cwd_weights_folder(rfdn_path, no_env_weights):
    (Path("weights")).mkdir()
    shutil.copy(rfdn_path, Path("weights") / RFDN_FILE)
    loaded = resolve_model("rfdn")
    assert loaded.checkpoint.path == (Path.cwd() / "weights" / RFDN_FILE).resolve()
    assert loaded.checkpoint.verified is True


def test_no_checkpoint_means_random_weights_with_notice(no_env_weights, no_builtin_weights):
    loaded = resolve_model("rfdn")
    assert loaded.checkpoint.path is None and not loaded.pretrained
    assert loaded.notices == [
        "rfdn x4: no checkpoint found, using random weights (run 'srbench weights pull rfdn' or pass --weights FILE)"
    ]
    with pytest.raises(CheckpointError, match="no checkpoint for dlgsanet-tiny x2: the authors publish"):
        resolve_model("dlgsanet-tiny", scale=2, require_weights=True)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.pth \(check the --weights path\)"):
        resolve_model("rfdn", weights=tmp_path / "nope.pth")


# --- damaged and hostile files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [LGVAN_FILE, RFDN_FILE])
def test_truncated_checkpoint(weights_dir, tmp_path, name):
    data = require_file(weights_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resolve_model("lgvan" if name == LGVAN_FILE else "rfdn", weights=path)


@pytest.mark.parametrize("size", [0, 1, 18])
def test_checkpoint_cut_after_a_few_bytes_is_truncated_not_a_crash(rfdn_path, tmp_path, size):
    path = tmp_path / RFDN_FILE
    path.write_bytes(rfdn_path.read_bytes()[:size])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resolve_model("rfdn", weights=path)


class _Payload:
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _evil(path: Path, marker: Path, how: str) -> Path:
    if how == "torch.save":
        torch.save({"params": {"w": torch.zeros(1)}, "hook": _Payload(marker)}, path)
    else:
        with path.open("wb") as fh:
            pickle.dump(_Payload(marker), fh)
    return path


@pytest.mark.parametrize(
    ("how", "reason"),
    [("torch.save", r"it needs arbitrary code to unpickle \(it references posix\.system\)"),
     ("pickle", r"the safe weights-only unpickler rejects it")],
)
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, how, reason):
    # the payload is live: the full unpickler runs it (a bare pickle then fails torch's magic-number check)
    live = tmp_path / "live_marker"
    with contextlib.suppress(RuntimeError):
        torch.load(_evil(tmp_path / "live.pth", live, how), weights_only=False)
    assert live.exists()

    marker = tmp_path / "marker"
    evil = _evil(tmp_path / "evil.pth", marker, how)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pth: " + reason):
        resolve_model("rfdn", weights=evil)
    assert not marker.exists()


def test_refusal_message_names_the_blocked_global_not_torch_boilerplate(tmp_path):
    evil = _evil(tmp_path / "evil.pth", tmp_path / "marker", "torch.save")
    with pytest.raises(CheckpointError) as info:
        checkpoint_io.read_checkpoint(evil)
    message = str(info.value)
    assert "system" in message  # what was refused
    assert "weights_only" not in message  # torch's advice to turn the protection off must not be relayed
    assert "\x1b[" not in message


def test_wrong_architecture_lists_missing_and_unexpected(rfdn_path):
    with pytest.raises(
        CheckpointError,
        match=r"does not fit lgvan x4: \d+ missing \(e\.g\. .*\); \d+ unexpected \(e\.g\. .*\) — wrong architecture",
    ):
        resolve_model("lgvan", weights=rfdn_path)


def test_shape_mismatch_is_named(tmp_path):
    state = random_state("rfdn", 6)
    key = next(k for k, v in state.items() if v.ndim == 4)
    good = tuple(state[key].shape)
    state[key] = torch.zeros(good[0] + 1, *good[1:])
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    bad = (good[0] + 1, *good[1:])
    with pytest.raises(CheckpointError, match=rf"1 shape mismatches \(e\.g\. {key} \({bad[0]}, .* vs \({good[0]}, "):
        resolve_model("rfdn", weights=path)


def test_hash_mismatch_gives_warning_and_unverified(rfdn_path, tmp_path, monkeypatch):
    folder = tmp_path / "resaved"
    folder.mkdir()
    copy = folder / RFDN_FILE
    torch.save(torch.load(rfdn_path, map_location="cpu", weights_only=True), copy)
    actual = sha(copy)
    assert actual != RFDN_SHA
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(folder))
    loaded = resolve_model("rfdn")
    assert loaded.checkpoint.verified is False
    assert loaded.checkpoint.sha256 == actual
    assert loaded.notices == [] and len(loaded.warnings) == 1
    assert actual in loaded.warnings[0] and RFDN_SHA in loaded.warnings[0]  # both hashes, in full
    assert "not the official model's" in loaded.warnings[0]
    row = next(r for r in catalogue(["rfdn"]))
    assert (row["status"], row["sha256"]) == ("mismatch", actual)


# --- pull ----------------------------------------------------------------------------------------------------------


class _Server:
    """A local HTTP server; ``routes`` maps a path to (body, declared Content-Length or None)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int | None]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path not in routes:
                    self.send_error(404)
                    return
                body, declared = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(declared if declared is not None else len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    srv = _Server()
    monkeypatch.setenv(checkpoint_io.URL_BASE_ENV, srv.base)
    yield srv
    srv.close()


RFDN_SPEC = get_spec("rfdn").checkpoint(4)


def test_url_base_override(monkeypatch):
    monkeypatch.delenv(checkpoint_io.URL_BASE_ENV, raising=False)
    assert checkpoint_io.download_url(RFDN_SPEC) == RFDN_SPEC.url
    monkeypatch.setenv(checkpoint_io.URL_BASE_ENV, "http://mirror.example/x/")
    assert checkpoint_io.download_url(RFDN_SPEC) == "http://mirror.example/x/team00_rfdn.pth"


def test_pull_good_download(server, rfdn_path, tmp_path):
    data = rfdn_path.read_bytes()
    server.routes[f"/{RFDN_FILE}"] = (data, None)
    dest = tmp_path / "dest"
    seen: list[tuple[int, int | None]] = []
    path = checkpoint_io.pull(RFDN_SPEC, dest, progress=lambda done, total: seen.append((done, total)))
    assert path == dest / RFDN_FILE
    assert sha(path) == RFDN_SHA
    assert sorted(os.listdir(dest)) == [RFDN_FILE]
    assert seen[-1] == (len(data), len(data))


def test_pull_defaults_to_the_cache(server, rfdn_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "c"))
    server.routes[f"/{RFDN_FILE}"] = (rfdn_path.read_bytes(), None)
    assert checkpoint_io.pull(RFDN_SPEC) == tmp_path / "c" / "weights" / RFDN_FILE


def test_pull_wrong_hash_leaves_nothing(server, lgvan_path, tmp_path):
    server.routes[f"/{RFDN_FILE}"] = (lgvan_path.read_bytes(), None)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=rf"has sha256 {LGVAN_SHA[:16]}…, expected {RFDN_SHA[:16]}…; nothing was saved"):
        checkpoint_io.pull(RFDN_SPEC, dest)
    assert not dest.exists()  # nothing saved, and no empty folder left


def test_pull_wrong_hash_keeps_an_existing_good_file(server, rfdn_path, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    shutil.copy(rfdn_path, dest / RFDN_FILE)
    server.routes[f"/{RFDN_FILE}"] = (b"not the checkpoint", None)
    with pytest.raises(DownloadError):
        checkpoint_io.pull(RFDN_SPEC, dest)
    assert os.listdir(dest) == [RFDN_FILE]
    assert sha(dest / RFDN_FILE) == RFDN_SHA


def test_pull_dropped_connection_leaves_nothing(server, rfdn_path, tmp_path):
    data = rfdn_path.read_bytes()
    server.routes[f"/{RFDN_FILE}"] = (data[:100_000], len(data))
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=rf"stopped after 100000 of {len(data)} bytes; nothing was saved"):
        checkpoint_io.pull(RFDN_SPEC, dest)
    assert not dest.exists()  # nothing saved, and no empty folder left


def test_pull_http_404(server, tmp_path):
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=rf"download from {server.base}/{RFDN_FILE} failed: HTTP 404"):
        checkpoint_io.pull(RFDN_SPEC, dest)
    assert not dest.exists()  # nothing saved, and no empty folder left


def test_pull_connection_refused(tmp_path, monkeypatch):
    srv = _Server()
    base = srv.base
    srv.close()  # nothing listens on that port any more
    monkeypatch.setenv(checkpoint_io.URL_BASE_ENV, base)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="failed: .*nothing was saved; without the network: pass --weights FILE"):
        checkpoint_io.pull(RFDN_SPEC, dest)
    assert not dest.exists()  # nothing saved, and no empty folder left


def test_pull_without_url_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoint_io.URL_BASE_ENV, raising=False)
    with pytest.raises(DownloadError, match="no download URL for dlgsanet_tiny_x4.pth: the authors publish"):
        checkpoint_io.pull(get_spec("dlgsanet-tiny").checkpoint(4), tmp_path)


# --- the same through the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli():
    from sr_bench.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def assert_one_error_line(result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def test_cli_pull(cli, server, rfdn_path, tmp_path):
    server.routes[f"/{RFDN_FILE}"] = (rfdn_path.read_bytes(), None)
    dest = tmp_path / "dest"
    result = cli("weights", "pull", "rfdn", "--dir", dest)
    assert result.exit_code == 0, result.output
    assert f"saved {dest / RFDN_FILE} (sha256 verified)" in result.stdout
    assert sha(dest / RFDN_FILE) == RFDN_SHA
    assert os.listdir(dest) == [RFDN_FILE]


def test_cli_pull_failure_is_one_line(cli, server, tmp_path):
    dest = tmp_path / "dest"
    result = cli("weights", "pull", "rfdn", "--dir", dest)
    line = assert_one_error_line(result)
    assert "failed: HTTP 404" in line
    assert result.exit_code == 1
    assert not dest.exists()  # nothing saved, and no empty folder left


def test_cli_pull_model_without_url(cli, tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoint_io.URL_BASE_ENV, raising=False)
    line = assert_one_error_line(cli("weights", "pull", "dlgsanet-light", "--scale", "2", "--dir", tmp_path))
    assert "no download URL for dlgsanet_light_x2.pth" in line


def test_cli_verify_refuses_malicious_checkpoint(cli, tmp_path, monkeypatch, no_env_weights):
    folder = tmp_path / "w"
    folder.mkdir()
    marker = tmp_path / "marker"
    _evil(folder / RFDN_FILE, marker, "torch.save")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(folder))
    result = cli("weights", "verify", "rfdn")
    line = assert_one_error_line(result)
    assert result.exit_code == 1
    assert "refused to load" in line and "arbitrary code" in line
    assert not marker.exists()


def test_cli_verify_hash_mismatch_fails(cli, rfdn_path, tmp_path, monkeypatch, no_env_weights):
    folder = tmp_path / "w"
    folder.mkdir()
    torch.save(torch.load(rfdn_path, map_location="cpu", weights_only=True), folder / RFDN_FILE)
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(folder))
    result = cli("weights", "verify", "rfdn")
    line = assert_one_error_line(result)
    assert result.exit_code == 1
    assert line.startswith("Error: rfdn x4: checkpoint ") and RFDN_SHA[:16] in line
