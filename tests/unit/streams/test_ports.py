"""Who holds a port: ``/proc/net/tcp`` parsing, and the holder of a socket this test opens."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from streams.ports import describe_holder, listening_inodes, parse_ss, port_free, port_holder

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4AA4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 81234 1 0 100 0 0 10 0
   1: 0100007F:4AA4 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 81299 1 0 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0 100 0 0 10 0"""
TCP6 = "   0: 00000000000000000000000001000000:4AA4 00000000000000000000000000000000:0000 0A 0 0 0 0 0 777 1"


def test_listening_inodes_take_only_listeners_of_the_port() -> None:
    lines = TCP.splitlines()[1:]
    assert listening_inodes(lines, 19108) == [81234]  # not the established connection on the same port
    assert listening_inodes(lines, 8080) == [555]
    assert listening_inodes([TCP6], 19108) == [777]
    assert listening_inodes(["garbage", ""], 19108) == []


def test_parse_ss_reads_the_pids_of_the_users_column() -> None:
    line = 'LISTEN 0 4096 127.0.0.1:19092 0.0.0.0:* users:(("tansu",pid=41,fd=9),("tansu",pid=40,fd=9))'
    assert parse_ss(line) == [41, 40] and parse_ss("") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_the_holder_of_a_socket_this_process_listens_on_is_this_process() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.listen()
        assert not port_free(port)
        holder = port_holder(port)
        assert holder is not None and holder.pid == os.getpid() and "python" in holder.command
        assert holder.parent_pid == os.getppid()
        assert describe_holder(port).startswith(f"held by pid {os.getpid()} (")
    assert port_free(port) and port_holder(port) is None
