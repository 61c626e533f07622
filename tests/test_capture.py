"""Bounded capture of a child's output (ntirekit.jail.capture): a real child printing one 400 MB line, then many
short lines; the reader keeps the last 64 KiB with lines cut, and never holds more than that."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

from ntirekit.jail.capture import MAX_BYTES, MAX_LINE, TailBuffer, read_tail, start_tail_reader

HUGE = 400 * 2**20
CHILD = f"""
import sys
out = sys.stdout.buffer
block = b"x" * 2**20
out.write(b"first\\n")
for _ in range({HUGE} // 2**20):
    out.write(block)
out.write(b"\\n")
for i in range(20000):
    out.write(b"line %05d\\n" % i)
out.write(b"unfinished")
sys.stderr.write("to stderr\\n")
"""


def test_a_400_mb_line_costs_a_few_kib() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    err_thread, err = start_tail_reader(child.stderr)
    tracemalloc.start()
    try:
        out = read_tail(child.stdout)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert child.wait(timeout=60) == 0
    err_thread.join(timeout=10)
    short = [b"line %05d\n" % i for i in range(20000)]
    assert out.total_bytes == len(b"first\n") + HUGE + 1 + sum(map(len, short)) + len(b"unfinished")
    assert out.peak_bytes <= MAX_BYTES + MAX_LINE and peak < 2**20   # every allocation of the reader, 64 KiB reads
    text = out.text()
    kept = [line + "\n" for line in text.split("\n")[1:-1]]
    # the kept short lines are exactly the last ones that fit in 64 KiB (11 bytes each)
    assert kept == [s.decode() for s in short[-(MAX_BYTES // 11):]]
    assert text.startswith(f"[{20002 - MAX_BYTES // 11} earlier lines dropped]\n") and text.endswith("\nunfinished")
    assert err.text() == "to stderr\n"


def test_long_lines_are_cut_with_the_count_of_what_was_cut() -> None:
    tail = TailBuffer(max_bytes=1024, max_line=16)
    for piece in (b"0123456789", b"abcdefghij\nshort\n", b"z" * 5000, b"\n\xe2\x82"):
        tail.feed(piece)
    assert tail.text() == "0123456789abcdef [4 bytes cut]\nshort\n" + "z" * 16 + " [4984 bytes cut]\n\ufffd"
    assert tail.total_bytes == 10 + 17 + 5000 + 3 and tail.dropped_lines == 0
