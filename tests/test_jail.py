"""The jail holds (issue 21): tried from inside by a probe entry, beside an honest twin where a limit is at stake.

Each probe is an entry whose model constructor runs code inside the jail, exactly as a team's code runs
(tests/helpers/jail_probe.py). The jail is the only place team code runs (ntirekit.jail)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ntirekit.jail import cgroup
from ntirekit.jail.bwrap import ENTRY, SCRATCH, bwrap_problem, sandbox_options, sandboxed_command
from ntirekit.jail.run import Limits, default_memory_mb
from tests.helpers.jail_probe import probe_entry, run_probe

pytestmark = [pytest.mark.skipif(bwrap_problem() is not None, reason=f"no sandbox here: {bwrap_problem()}"),
              pytest.mark.slow]


def _cgroups() -> bool:
    group, _why = cgroup.create(64 * 2**20, 16)
    if group is None:
        return False
    group.remove()
    return True


needs_cgroups = pytest.mark.skipif(not _cgroups(), reason="no cgroup this process may create here")


@pytest.fixture()
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A host with a $HOME, data, results and another entry, each holding a secret, and the organizer's token in its
    environment."""
    folders = {name: tmp_path / name for name in ("home", "data", "results", "other_entry")}
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "secret.txt").write_text(f"{name} secret")
    monkeypatch.setenv("HOME", str(folders["home"]))
    monkeypatch.setenv("ORGANIZER_TOKEN", "tok-3f9a7c1e")
    monkeypatch.setenv("NTIREKIT_WEIGHTS", str(folders["data"]))
    return folders


def test_nothing_of_the_organizer_in_any_environ_or_cmdline(host: dict[str, Path], tmp_path: Path) -> None:
    code = """
    out["procs"] = {}
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        item = {}
        for name in ("environ", "cmdline"):
            try:
                item[name] = open(f"/proc/{pid}/{name}", "rb").read().decode("utf-8", "replace")
            except OSError as exc:
                item[name] = type(exc).__name__
        out["procs"][pid] = item
    out["env"] = dict(os.environ)
    out["cwd"] = os.getcwd()
    """
    report, out = run_probe(probe_entry(tmp_path / "subs" / "probe01", code))
    assert report.sandbox == "bwrap" and out, report.output
    assert set(out["procs"]) == {"1", "2"}                   # bwrap's init and the child: nothing else
    text = repr(out["procs"])
    for secret in ("tok-3f9a7c1e", str(host["home"]), str(tmp_path), "NTIREKIT_WEIGHTS", "ORGANIZER_TOKEN"):
        assert secret not in text
    assert out["procs"]["1"]["environ"] == ""               # bwrap started with an empty environment
    assert set(out["env"]) <= {"PATH", "HOME", "PWD", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
                               "PYTHONFAULTHANDLER", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"}
    assert out["env"].get("LD_LIBRARY_PATH", sys.prefix).startswith(sys.prefix)   # OpenCV's import sets it
    assert out["env"]["HOME"] == SCRATCH and out["cwd"] == SCRATCH


def test_host_folders_are_invisible_and_the_entry_arrives_without_its_links(host: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    folder = tmp_path / "subs" / "probe01"
    paths = {name: str(f / "secret.txt") for name, f in host.items()}
    code = f"""
    paths = {paths!r}
    out["seen"] = {{name: os.path.exists(p) for name, p in paths.items()}}
    out["host_entry"] = os.path.exists({str(folder)!r})
    out["entry"] = sorted(os.listdir({ENTRY!r}))
    out["notes"] = open({ENTRY!r} + "/notes.txt").read()
    out["etc"] = sorted(os.listdir("/etc"))
    """
    probe_entry(folder, code)
    (folder / "notes.txt").write_text("the team's own file")
    (folder / "leak.txt").symlink_to(host["home"] / "secret.txt")          # a link leaving the folder
    (folder / "inside.txt").symlink_to(folder / "notes.txt")               # a link that stays inside
    report, out = run_probe(folder)
    assert out, report.output
    assert out["seen"] == {"home": False, "data": False, "results": False, "other_entry": False}
    assert out["host_entry"] is False and out["etc"] == ["ld.so.cache"]
    assert out["entry"] == ["entry.toml", "inside.txt", "model.py", "notes.txt"]     # no leak.txt
    assert out["notes"] == "the team's own file"


def test_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = f"""
    import socket
    out["interfaces"] = [name for _i, name in socket.if_nameindex()]
    for target in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
        try:
            socket.create_connection(target, timeout=3).close()
            out[str(target)] = "connected"
        except OSError as exc:
            out[str(target)] = type(exc).__name__
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code))
    server.settimeout(0.2)
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()
    assert out["interfaces"] == ["lo"] and "connected" not in out.values(), report.output


def test_the_organizer_cannot_be_seen_or_signalled(tmp_path: Path) -> None:
    code = f"""
    import signal
    for name, pid in (("me", {os.getpid()}), ("parent", {os.getppid()})):
        try:
            os.kill(pid, signal.SIGKILL)
            out[name] = "sent"
        except OSError as exc:
            out[name] = type(exc).__name__
    out["tty"] = os.path.exists("/dev/tty") and os.isatty(0)
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code))
    assert out == {"me": "ProcessLookupError", "parent": "ProcessLookupError", "tty": False}, report.output


def test_a_setsid_daemon_dies_with_the_jail(tmp_path: Path) -> None:
    marker = f"ntirekit-daemon-{os.getpid()}-{time.monotonic_ns()}"
    code = f"""
    import subprocess
    daemon = "import os, time\\nos.setsid()\\nwhile True:\\n    time.sleep(0.05)  # {marker}"
    out["daemon"] = subprocess.Popen([sys.executable, "-c", daemon], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code))
    assert out.get("daemon"), report.output
    time.sleep(0.5)
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]
    assert alive == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


@needs_cgroups
def test_memfd_and_tmpfs_pages_count_against_the_memory_limit(tmp_path: Path) -> None:
    hog = """
    fd = os.memfd_create("hog")
    chunk = b"x" * (64 * 2**20)
    for i in range(32):                       # 2 GiB held in an anonymous file, no resident memory of its own
        os.write(fd, chunk)
        out["mib"] = (i + 1) * 64
        print("JAILOUT " + json.dumps(out), flush=True)
    """
    limits = Limits(time_s=120, memory_mb=600)
    report, out = run_probe(probe_entry(tmp_path / "hog", hog), limits)
    assert report.ended_by is not None and report.ended_by[0] == "memory", report
    assert report.oom_killed and out["mib"] < 2048
    assert report.enforcement["memory"].startswith("cgroup")
    twin, twin_out = run_probe(probe_entry(tmp_path / "twin", "out['ok'] = True"), limits)
    assert twin.ended_by is None and twin_out == {"ok": True}, twin.output


def test_scratch_is_a_capped_tmpfs_and_nothing_reaches_the_host(tmp_path: Path) -> None:
    code = f"""
    chunk = b"x" * 2**20
    written = 0
    try:
        with open("{SCRATCH}/big", "wb") as f:
            for _ in range(1024):
                f.write(chunk)
                f.flush()
                written += 1
    except OSError as exc:
        out["big"] = type(exc).__name__ + str(exc.errno)
    out["written_mib"] = written
    os.remove("{SCRATCH}/big")
    files = 0
    try:
        for i in range(20000):
            with open(f"{SCRATCH}/f{{i}}", "w") as f:
                f.write("y" * 100)
            files += 1
    except OSError as exc:
        out["files_error"] = type(exc).__name__
    out["files"] = files
    for path in ("/usr/x", "/entry/../x", "/proc/x"):
        try:
            open(path, "w").write("x")
            out[path] = "written"
        except OSError as exc:
            out[path] = type(exc).__name__
    """
    folder = probe_entry(tmp_path / "p", code)
    before = set(tmp_path.rglob("*"))
    report, out = run_probe(folder, Limits(time_s=120, scratch_mb=64))
    assert out["big"].startswith("OSError28") and out["written_mib"] <= 64, out     # ENOSPC at the tmpfs size
    assert out["files"] < 20000 and "written" not in [out["/usr/x"], out["/entry/../x"], out["/proc/x"]]
    assert set(tmp_path.rglob("*")) - before == set()                               # nothing on the host
    assert report.enforcement["disk"].startswith("tmpfs")


@needs_cgroups
def test_a_fork_bomb_stops_at_the_pids_limit(tmp_path: Path) -> None:
    code = """
    import time
    started = 0
    try:
        for _ in range(1000):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            started += 1
    except OSError as exc:
        out["error"] = type(exc).__name__
    out["started"] = started
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code), Limits(time_s=60, pids=64))
    assert out["started"] < 64 and out["error"] == "BlockingIOError", out
    assert report.enforcement["pids"].startswith("cgroup")


@needs_cgroups
def test_without_memory_mb_the_machine_share_is_enforced_by_the_kernel(tmp_path: Path) -> None:
    report, out = run_probe(probe_entry(tmp_path / "p", "out['ok'] = True"))
    assert out == {"ok": True}
    assert report.limits["memory_mib"] == default_memory_mb() and report.enforcement["memory"].startswith("cgroup")


def test_what_a_team_prints_is_stored_clean(tmp_path: Path) -> None:
    code = r"""
    print("\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07visible\x1b[2K\r\x1b[1Amoved" + "\x9b2J", flush=True)
    out["printed"] = True
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code))
    assert out == {"printed": True}
    assert not any(c in report.output for c in "\x1b\x07\x9b\r")
    assert "moved" in report.output and "owned" not in report.output and "ZXZpbA" not in report.output


@needs_cgroups
def test_the_jail_leaves_no_cgroup_or_folder_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_tmp = tmp_path / "tmp"                 # this test's own temporary folder: nothing else writes there
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    report, _ = run_probe(probe_entry(tmp_path / "p", "out['ok'] = 1"))
    assert report.enforcement["memory"].startswith("cgroup")
    assert list(Path("/sys/fs/cgroup").rglob(f"ntirekit-{os.getpid()}-*")) == []
    assert list(private_tmp.iterdir()) == []


def test_tmp_and_shm_are_bounded_and_no_namespace_can_be_made(tmp_path: Path) -> None:
    code = """
    import errno, subprocess
    for folder in ("/tmp", "/dev/shm"):
        try:
            with open(folder + "/big", "wb") as f:
                for _ in range(300):
                    f.write(bytes(2**20))
            out[folder] = "written"
        except OSError as exc:
            out[folder] = errno.errorcode[exc.errno]
    out["unshare"] = subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode
    """
    report, out = run_probe(probe_entry(tmp_path / "p", code))
    assert out == {"/tmp": "ENOSPC", "/dev/shm": "ENOSPC", "unshare": 1}, report.output


def test_missing_binds_and_binds_that_show_home_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(FileNotFoundError, match="bind .* does not exist"):
        sandbox_options(binds=[tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="device .* does not exist"):
        sandbox_options(devices=["/dev/nope"])
    for shows_home in (home, home.parent, "/"):
        with pytest.raises(ValueError, match="would show \\$HOME"):
            sandbox_options(binds=[shows_home])
    assert "--ro-bind" not in sandboxed_command(["true"], 3)          # options travel through the pipe, not argv


def test_sigterm_to_eval_leaves_no_jail_behind(tmp_path: Path) -> None:
    """A SIGTERM to ``eval`` while a jail runs: the command exits 143, the jail's processes are gone, and neither its
    cgroup nor a scratch folder is left (nothing of a jail is ever on the host's disk)."""
    code = """
    import time
    print("JAILOUT " + json.dumps({"started": True}), flush=True)
    time.sleep(120)
    """
    probe_entry(tmp_path / "subs" / "team01_slow", code, name="team01_slow")
    private_tmp = tmp_path / "tmp"                 # the command's own temporary folder: nothing else writes there
    private_tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "from ntirekit.cli import main; main()", "eval", "--track",
                             "complexity", "--entries", str(tmp_path / "subs"), "--entry", "team01_slow", "--quiet",
                             "--leaderboard", "none", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "TMPDIR": str(private_tmp)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _descendants_running(proc.pid, "ntirekit.jail.child"):
        time.sleep(0.2)
    jailed = _descendants_running(proc.pid, "ntirekit.jail.child")
    assert jailed, "the jail never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, output
    time.sleep(0.5)
    assert not [p for p in jailed if "ntirekit.jail.child" in _cmdline(Path(f"/proc/{p}"))]   # gone (or reused)
    mine = f"ntirekit-{proc.pid}-"
    assert [p for root in ("/sys/fs/cgroup",) for p in Path(root).rglob(f"{mine}*")] == []
    assert list(private_tmp.iterdir()) == []


def _descendants_running(pid: int, marker: str) -> list[int]:
    """The pids below ``pid`` whose command line holds ``marker``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            children.setdefault(int(text[text.rfind(")") + 2:].split()[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    todo, seen, found = [pid], set(), []
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if p != pid and marker in _cmdline(Path(f"/proc/{p}")):
            found.append(p)
        todo += children.get(p, [])
    return found
