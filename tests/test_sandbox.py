"""The bubblewrap sandbox is really there: tried from inside with a real child (ntirekit.eval.sandbox.bwrap)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ntirekit.eval.sandbox.bwrap import SCRATCH, bwrap_problem, runtime_binds, sandboxed_command

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"no sandbox here: {bwrap_problem()}")


@pytest.fixture()
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A host with a $HOME, a data folder, a results folder, another entry, all holding secrets; an entry folder and
    an empty scratch folder."""
    folders = {name: tmp_path / name for name in ("home", "data", "results", "other_entry", "entry", "scratch")}
    for name, folder in folders.items():
        folder.mkdir()
        if name != "scratch":
            (folder / "secret.txt").write_text(f"{name} secret")
    monkeypatch.setenv("HOME", str(folders["home"]))
    return folders


def run_inside(code: str, host: dict[str, Path], *, timeout: float = 120, **options) -> tuple[int, dict, str]:
    """Run ``code`` in Python inside the sandbox (entry folder bound read-only; ``options`` for
    :func:`sandboxed_command`); ``code`` fills the dict ``out``, printed as JSON on the last line."""
    program = f"import json, os, sys\nout = {{}}\n{code}\nprint(json.dumps(out))\n"
    argv = sandboxed_command([sys.executable, "-c", program], binds=[*runtime_binds(), host["entry"]],
                             scratch=host["scratch"], **options)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=host["entry"])
    out = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    return done.returncode, out, done.stderr


def test_network_is_unreachable_even_the_hosts_loopback(host: dict[str, Path]) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):    # reachable from the host ...
        server.accept()[0].close()
    code = f"""
import socket
out["interfaces"] = [name for _i, name in socket.if_nameindex()]
for target in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    try:
        socket.create_connection(target, timeout=3).close()
        out[str(target)] = "connected"
    except OSError as exc:
        out[str(target)] = type(exc).__name__
"""
    rc, out, err = run_inside(code, host)
    server.settimeout(0.2)
    with pytest.raises(TimeoutError):                                 # ... and nothing came from inside
        server.accept()
    server.close()
    assert rc == 0, err
    assert out["interfaces"] == ["lo"]
    assert len(out) == 4 and "connected" not in out.values(), out


def test_host_home_data_results_and_other_entries_are_not_visible(host: dict[str, Path]) -> None:
    paths = {name: str(folder / "secret.txt") for name, folder in host.items() if name != "scratch"}
    code = f"""
paths = {paths!r}
out["seen"] = {{name: os.path.exists(p) for name, p in paths.items()}}
out["home"] = os.environ.get("HOME")
out["passwd"] = os.path.exists("/etc/passwd")
out["etc"] = sorted(os.listdir("/etc"))
out["entry"] = open(paths["entry"]).read()
"""
    rc, out, err = run_inside(code, host)
    assert rc == 0, err
    assert out["seen"] == {"home": False, "data": False, "results": False, "other_entry": False, "entry": True}
    assert out["entry"] == "entry secret" and out["home"] == SCRATCH
    assert out["passwd"] is False and out["etc"] == ["ld.so.cache"]


def test_the_organizer_is_invisible_and_cannot_be_signalled(host: dict[str, Path]) -> None:
    code = f"""
import signal
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["ppid"] = os.getppid()
try:
    os.kill({os.getpid()}, signal.SIGKILL)
    out["kill"] = "sent"
except OSError as exc:
    out["kill"] = type(exc).__name__
try:
    os.kill({os.getppid()}, signal.SIGKILL)
    out["kill_grandparent"] = "sent"
except OSError as exc:
    out["kill_grandparent"] = type(exc).__name__
out["tty"] = os.path.exists("/dev/tty") and os.isatty(0)
out["sid"] = os.getsid(0) == os.getpgid(0)
"""
    rc, out, err = run_inside(code, host)
    assert rc == 0, err
    assert out["pids"] == [1, 2] and out["ppid"] == 1            # bwrap's init and the child: nothing else
    assert out["kill"] == "ProcessLookupError" and out["kill_grandparent"] == "ProcessLookupError"
    assert out["tty"] is False


@pytest.mark.slow
def test_a_setsid_daemon_dies_with_the_sandbox(host: dict[str, Path]) -> None:
    marker = f"ntirekit-daemon-{os.getpid()}-{time.monotonic_ns()}"
    daemon = (f"import os, time\nos.setsid()\nwhile True:\n    open('{SCRATCH}/ticks', 'a').write('.')\n"
              f"    time.sleep(0.05)  # {marker}")
    code = f"""
import subprocess, time
child = subprocess.Popen([sys.executable, "-c", {daemon!r}],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 60
while not os.path.exists("{SCRATCH}/ticks") and child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.02)
out["daemon"] = child.pid
"""
    rc, out, err = run_inside(code, host)
    assert rc == 0, err
    ticks = host["scratch"] / "ticks"
    assert ticks.exists(), "the daemon never started"
    time.sleep(0.5)
    before = ticks.stat().st_size
    time.sleep(1.0)
    assert ticks.stat().st_size == before, "the daemon still writes after the sandbox ended"
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]
    assert alive == []


@pytest.mark.slow
def test_killing_the_sandbox_kills_everything_in_it(host: dict[str, Path]) -> None:
    marker = f"ntirekit-stuck-{os.getpid()}-{time.monotonic_ns()}"
    program = (f"import os, subprocess, sys, time\n"
               f"subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)  # {marker}'],"
               f" start_new_session=True)\n"
               f"while True:\n    open('{SCRATCH}/ticks', 'a').write('.')\n    time.sleep(0.05)")
    argv = sandboxed_command([sys.executable, "-c", program], binds=runtime_binds(), scratch=host["scratch"])
    sandbox = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ticks = host["scratch"] / "ticks"
    deadline = time.monotonic() + 60
    while not ticks.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ticks.exists(), "the child never started"
    sandbox.kill()                                      # what a runner does on a time-out: SIGKILL to bwrap only
    sandbox.wait(timeout=30)
    time.sleep(0.5)
    before = ticks.stat().st_size
    time.sleep(1.0)
    assert ticks.stat().st_size == before, "the child still runs after its sandbox was killed"
    assert [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)] == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def test_only_the_scratch_folder_survives(host: dict[str, Path], tmp_path: Path) -> None:
    tmp_marker = f"ntirekit-sandbox-{os.getpid()}-{time.monotonic_ns()}"
    targets = {"tmp": f"/tmp/{tmp_marker}", "shm": f"/dev/shm/{tmp_marker}",
               "entry": str(host["entry"] / "written.txt"),
               "env": str(Path(sys.prefix) / "written.txt"), "root": "/written.txt", "dev": "/dev/written.txt",
               "scratch": f"{SCRATCH}/kept.txt"}
    code = f"""
for name, path in {targets!r}.items():
    try:
        with open(path, "w") as f:
            f.write("x")
        out[name] = "written"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
"""
    rc, out, err = run_inside("import errno\n" + code, host)
    assert rc == 0, err
    assert out["tmp"] == out["shm"] == out["scratch"] == "written"   # the child could write these ...
    assert out["entry"] == out["env"] == out["root"] == out["dev"] == "EROFS"
    assert not Path("/tmp", tmp_marker).exists() and not Path("/dev/shm", tmp_marker).exists()  # ... only one stays
    assert not (host["entry"] / "written.txt").exists() and not (Path(sys.prefix) / "written.txt").exists()
    assert [p.name for p in host["scratch"].iterdir()] == ["kept.txt"]


def test_memory_backed_folders_are_bounded_and_no_namespace_can_be_made(host: dict[str, Path]) -> None:
    code = f"""
import errno, subprocess
for folder in ("/tmp", "/dev/shm"):
    try:
        with open(folder + "/big", "wb") as f:
            for _ in range(3):
                f.write(bytes(2**20))
        out[folder] = "written"
    except OSError as exc:
        out[folder] = errno.errorcode[exc.errno]
out["unshare"] = subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode
"""
    rc, out, err = run_inside(code, host, tmp_bytes=2**20)
    assert rc == 0, err
    assert out == {"/tmp": "ENOSPC", "/dev/shm": "ENOSPC", "unshare": 1}


@pytest.mark.slow
def test_the_kit_and_torch_import_inside(host: dict[str, Path]) -> None:
    rc, out, err = run_inside("import torch, ntirekit\nout['sum'] = float(torch.ones(3).sum())", host, timeout=300)
    assert rc == 0, err
    assert out == {"sum": 3.0}


def test_missing_binds_and_binds_that_show_home_are_refused(host: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="bind .* does not exist"):
        sandboxed_command(["true"], binds=[host["entry"] / "nope"], scratch=host["scratch"])
    with pytest.raises(FileNotFoundError, match="device .* does not exist"):
        sandboxed_command(["true"], devices=["/dev/nope"], scratch=host["scratch"])
    with pytest.raises(FileNotFoundError, match="scratch"):
        sandboxed_command(["true"], scratch=host["scratch"] / "nope")
    for shows_home in (host["home"], host["home"].parent, "/"):
        with pytest.raises(ValueError, match="would show \\$HOME"):
            sandboxed_command(["true"], binds=[shows_home], scratch=host["scratch"])


def test_only_the_devices_asked_for_are_added(host: dict[str, Path]) -> None:
    minimal = {"null", "zero", "full", "random", "urandom", "tty", "console", "pts", "ptmx", "shm", "fd", "stdin",
               "stdout", "stderr", "core", "mqueue"}
    extra = next((d for d in sorted(os.listdir("/dev")) if d not in minimal and Path("/dev", d).is_char_device()
                  and os.access(Path("/dev", d), os.R_OK)), None)
    if extra is None:
        pytest.skip("no host character device outside bwrap's minimal /dev")
    code = f"out['listed'] = sorted(os.listdir('/dev')); out['extra'] = os.path.exists('/dev/{extra}')"
    rc, plain, err = run_inside(code, host)
    assert rc == 0, err
    rc, added, err = run_inside(code, host, devices=[f"/dev/{extra}"])
    assert rc == 0, err
    assert plain["extra"] is False and set(plain["listed"]) <= minimal
    assert added["extra"] is True and set(added["listed"]) == set(plain["listed"]) | {extra}
