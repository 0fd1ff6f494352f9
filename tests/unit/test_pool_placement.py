"""The pool's pure parts: URLs, memory sizes, room and placement, --jobs auto's slots."""

from __future__ import annotations

import pytest

from pytest_axp.sandbox.base import ResourceLimits
from pytest_axp.sandbox.pool import (
    LABEL_CPUS,
    LABEL_MEMORY,
    Room,
    choose,
    display_url,
    memory_bytes,
    parse_hosts,
    pool_slots,
    used_by,
)

G = 1 << 30


def test_hosts_from_repeats_and_commas_in_order_without_duplicates():
    assert parse_hosts(["unix:///a/sock,tcp://h:2376", " ssh://me@b ", "unix:///a/sock", ""]) \
        == ["unix:///a/sock", "tcp://h:2376", "ssh://me@b"]


@pytest.mark.parametrize("bad", ["/var/run/docker.sock", "ftp://x", "h:2375"])
def test_a_host_without_a_known_scheme_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"docker host .*unix://PATH"):
        parse_hosts([bad])


def test_the_recorded_url_keeps_no_password():
    assert display_url("ssh://me:s3cret@host:22") == "ssh://me@host:22"
    assert display_url("tcp://u:p@10.0.0.2:2376/x") == "tcp://u@10.0.0.2:2376/x"
    assert display_url("unix:///run/d.sock") == "unix:///run/d.sock"


@pytest.mark.parametrize("text,size", [("4g", 4 * G), ("512m", 512 << 20), ("1024", 1024),
                                       ("1.5g", int(1.5 * G)), ("2GB", 2 * G)])
def test_memory_in_dockers_syntax(text, size):
    assert memory_bytes(text) == size


def test_memory_that_is_not_a_size_is_refused():
    with pytest.raises(ValueError, match="docker's syntax"):
        memory_bytes("lots")


def test_used_counts_active_pool_sandboxes_only():
    listed = [
        {"State": "running", "Labels": {LABEL_CPUS: "1.0", LABEL_MEMORY: str(G)}},
        {"State": "created", "Labels": {LABEL_CPUS: "0.5", LABEL_MEMORY: str(G)}},
        {"State": "exited", "Labels": {LABEL_CPUS: "4.0", LABEL_MEMORY: str(8 * G)}},
        {"State": "running", "Labels": {LABEL_CPUS: "x"}},
    ]
    assert used_by(listed) == (1.5, 2 * G, 2)


def test_the_roomiest_engine_that_fits_is_chosen():
    rooms = [Room(2, 8 * G, used_cpus=1, used_memory=G, sandboxes=1),
             Room(2, 8 * G),
             Room(4, 8 * G, used_cpus=1, used_memory=G, sandboxes=1)]
    assert choose(rooms, 1, G, wait=False) == 1
    # Memory is the scarcer resource here: the engine with more of it left wins.
    rooms = [Room(8, 4 * G, used_cpus=1, used_memory=3 * G, sandboxes=1),
             Room(8, 4 * G, used_cpus=4, used_memory=G, sandboxes=2)]
    assert choose(rooms, 1, G, wait=False) == 1


def test_a_full_pool_waits_with_auto_and_overcommits_with_a_fixed_jobs():
    rooms = [Room(2, 8 * G, used_cpus=2, used_memory=2 * G, sandboxes=2),
             Room(2, 8 * G, used_cpus=1.5, used_memory=G, sandboxes=1)]
    assert choose(rooms, 1, G, wait=True) is None
    assert choose(rooms, 1, G, wait=False) == 1


def test_jobs_auto_admits_no_more_where_the_load_does_not_allow():
    hot = Room(8, 16 * G, used_cpus=1, used_memory=G, sandboxes=1, load=3.5)
    cool = Room(8, 16 * G, used_cpus=2, used_memory=2 * G, sandboxes=2, load=0.4)
    assert hot.busy() and not cool.busy()
    # The roomier engine is too busy: the other one takes it.
    assert choose([hot, cool], 1, G, wait=True) == 1
    # Every engine busy: --jobs auto waits; a fixed --jobs places by room alone.
    assert choose([hot, Room(8, 16 * G, sandboxes=1, load=9.0)], 1, G, wait=True) is None
    assert choose([hot, cool], 1, G, wait=False) == 0
    # An engine with none of ours is never too busy (the pool never stalls), nor is one
    # whose load is not known (a remote engine).
    assert choose([Room(8, 16 * G, load=9.0)], 1, G, wait=True) == 0
    assert choose([Room(8, 16 * G, sandboxes=3, used_cpus=3, used_memory=3 * G)], 1, G,
                  wait=True) == 0


def test_a_sandbox_larger_than_any_engine_still_goes_to_an_empty_one():
    rooms = [Room(2, 8 * G, used_cpus=1, used_memory=G, sandboxes=1), Room(2, 8 * G)]
    assert choose(rooms, 4, G, wait=True) == 1
    assert choose([], 1, G, wait=True) is None


def test_jobs_auto_is_what_the_empty_pool_holds():
    rooms = [Room(2, 8 * G), Room(4, 3 * G), Room(1, 64 * G)]
    # 2 by CPU; 3 by memory (4 by CPU); 1 by CPU.
    assert pool_slots(rooms, ResourceLimits(cpus=1, memory="1g")) == 6
    # Never below one per engine.
    assert pool_slots(rooms, ResourceLimits(cpus=8, memory="1g")) == 3


def test_the_pool_is_a_sandbox_backend():
    from pytest_axp.sandbox.base import SandboxBackend
    from pytest_axp.sandbox.pool import PoolBackend

    # Made without contacting any engine.
    assert isinstance(PoolBackend(["unix:///nowhere.sock"]), SandboxBackend)
