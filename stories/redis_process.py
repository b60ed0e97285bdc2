"""A Redis server of its own, to pause, kill and restart empty (the fault tests and
`stories bench redis-pause`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from stories.emulator import free_port

NOTHING_ON_DISK = ["--save", "", "--appendonly", "no"]


class RedisProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    def start(self) -> None:
        """Start (again, empty: it keeps nothing on disk) and wait until it answers."""
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._process = subprocess.Popen(  # noqa: S603 - redis-server, fixed arguments
            [server, "--port", str(self.port), "--bind", "127.0.0.1", *NOTHING_ON_DISK],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        """Stalled, not gone: connections stay open and nothing answers."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        if self._process is not None:
            if self._paused:
                self.resume()
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


@contextmanager
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.kill()
