"""Reading one input: never more than the size limit, and a small file never asks for a buffer of the
whole limit (reading a tree of small manifests allocated 32 MiB per file)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO

import pytest

from policyengine.errors import LoadError
from policyengine.loader import InputLimits, _read_bounded, read_text


class _Recording:
    """A real binary file that records how many bytes each read asks for."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.asked: list[int] = []

    def fileno(self) -> int:
        return self.handle.fileno()

    def read(self, n: int = -1) -> bytes:
        self.asked.append(n)
        return self.handle.read(n)


def test_a_small_file_is_read_with_a_buffer_of_its_size(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_bytes(b"a: 1\n" * 20)
    with path.open("rb") as handle:
        spy = _Recording(handle)
        assert _read_bounded(spy, 32 << 20) == b"a: 1\n" * 20  # type: ignore[arg-type]
    assert spy.asked == [101]


@pytest.mark.parametrize("length", [10, 99, 100, 101, 5000])
def test_reads_stop_at_the_bound(tmp_path: Path, length: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * length)
    with path.open("rb") as handle:
        assert len(_read_bounded(handle, 101)) == min(length, 101)


def test_a_pipe_of_unknown_size_is_read_up_to_the_bound() -> None:
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, b"y" * 300), os.close(write_end)))
    writer.start()
    with os.fdopen(read_end, "rb") as handle:
        assert len(_read_bounded(handle, 101)) == 101
    writer.join(timeout=30)  # hang guard


def test_a_file_past_the_limit_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 2048)
    with pytest.raises(LoadError) as err:
        read_text(str(path), limits=InputLimits(max_bytes=1024))
    assert "larger than the input size limit of 1 KiB" in err.value.problems[0].message
    assert read_text(str(path), limits=InputLimits(max_bytes=2048)) == "#" * 2048
