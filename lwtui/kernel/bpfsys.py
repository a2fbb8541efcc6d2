"""The few bpf(2) commands lwtui needs without BCC.

`lwtui block/allow/rules` open the running session's pinned maps and edit them
here, so they start in milliseconds and never compile anything. The tests and
benchmarks use `prog_test_run` (BPF_PROG_TEST_RUN), which libbcc 0.26 does not
wrap. x86_64 and aarch64 syscall numbers; `union bpf_attr` is built field by
field in a zeroed buffer, as the kernel requires unused bytes to be zero.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import platform
import struct

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280}.get(platform.machine(), 321)

MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
PROG_LOAD = 5
OBJ_PIN = 6
OBJ_GET = 7
PROG_TEST_RUN = 10
PROG_GET_FD_BY_ID = 13
OBJ_GET_INFO_BY_FD = 15

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

PROG_TYPE_LWT_IN, PROG_TYPE_LWT_OUT, PROG_TYPE_LWT_XMIT = 10, 11, 12

_ATTR_SIZE = 144
_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class BpfError(OSError):
    """A bpf(2) command failed; errno and the command name are kept."""


def _addr(buf) -> int:
    return ct.addressof(buf) if buf is not None else 0


def _bpf(cmd: int, attr: ct.Array, what: str) -> int:
    ret = _libc.syscall(_SYS_BPF, cmd, ct.byref(attr), ct.sizeof(attr))
    if ret < 0:
        err = ct.get_errno()
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return ret


def _attr(fmt: str, *values) -> ct.Array:
    attr = ct.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, attr, 0, *values)
    return attr


# -- objects ---------------------------------------------------------------

def obj_pin(fd: int, path: str) -> None:
    """Pin a map or program fd at `path` (on a bpffs)."""
    p = ct.create_string_buffer(os.fsencode(path))
    _bpf(OBJ_PIN, _attr("=QI", _addr(p), fd), f"pin {path}")


def obj_get(path: str) -> int:
    """Open a pinned object; returns a new fd (the caller closes it)."""
    p = ct.create_string_buffer(os.fsencode(path))
    return _bpf(OBJ_GET, _attr("=QI", _addr(p), 0), f"open {path}")


def prog_fd_by_id(prog_id: int) -> int:
    """Open a loaded program by its id (route dumps name lwtui's programs `lwtui_HOOK_ID`);
    returns a new fd (the caller closes it)."""
    return _bpf(PROG_GET_FD_BY_ID, _attr("=I", prog_id), f"open program {prog_id}")


def map_info(fd: int) -> dict:
    """type, id, key_size, value_size, max_entries, map_flags, name of a map fd."""
    info = ct.create_string_buffer(80)
    _bpf(OBJ_GET_INFO_BY_FD, _attr("=IIQ", fd, len(info), _addr(info)), "map info")
    typ, mid, ks, vs, maxe, flags = struct.unpack_from("=6I", info, 0)
    name = info.raw[24:40].split(b"\0", 1)[0].decode()
    return dict(type=typ, id=mid, key_size=ks, value_size=vs,
                max_entries=maxe, map_flags=flags, name=name)


def prog_info(fd: int) -> dict:
    """type, id and name of a program fd."""
    info = ct.create_string_buffer(256)
    _bpf(OBJ_GET_INFO_BY_FD, _attr("=IIQ", fd, len(info), _addr(info)), "prog info")
    typ, pid = struct.unpack_from("=2I", info, 0)
    # struct bpf_prog_info: type, id, tag[8], jited_len, xlated_len,
    # jited_insns, xlated_insns, load_time, created_by_uid, nr_map_ids, map_ids, name[16]
    name = info.raw[64:80].split(b"\0", 1)[0].decode()
    return dict(type=typ, id=pid, name=name)


# -- maps ------------------------------------------------------------------

def map_lookup(fd: int, key: ct.Structure, value: ct.Structure) -> bool:
    """Fill `value` from the map; False when the key is absent."""
    try:
        _bpf(MAP_LOOKUP_ELEM, _attr("=IIQQ", fd, 0, ct.addressof(key), ct.addressof(value)), "map lookup")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def map_update(fd: int, key: ct.Structure, value: ct.Structure, flags: int = BPF_ANY) -> None:
    _bpf(MAP_UPDATE_ELEM, _attr("=IIQQQ", fd, 0, ct.addressof(key), ct.addressof(value), flags), "map update")


def map_delete(fd: int, key: ct.Structure) -> bool:
    """Delete a key; False when it was absent."""
    try:
        _bpf(MAP_DELETE_ELEM, _attr("=IIQ", fd, 0, ct.addressof(key)), "map delete")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def map_keys(fd: int, key_type: type) -> list:
    """Every key of a (small) map, by BPF_MAP_GET_NEXT_KEY."""
    keys = []
    cur, nxt = None, key_type()
    while True:
        try:
            _bpf(MAP_GET_NEXT_KEY, _attr("=IIQQ", fd, 0, _addr(cur), ct.addressof(nxt)), "map next key")
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return keys
            raise
        keys.append(nxt)
        cur, nxt = nxt, key_type()


def map_items(fd: int, key_type: type, value_type: type) -> list:
    """(key, value) pairs of a (small) map; keys deleted meanwhile are skipped."""
    out = []
    for k in map_keys(fd, key_type):
        v = value_type()
        if map_lookup(fd, k, v):
            out.append((k, v))
    return out


# -- programs --------------------------------------------------------------

def prog_load_trivial(prog_type: int, retval: int = 0, name: str = "lwtui_noop") -> int:
    """Load `r0 = retval; exit` as `prog_type`; returns its fd.

    For tests that need a real program on a route without compiling C, and as
    the benchmarks' no-op floor.
    """
    insns = ct.create_string_buffer(struct.pack("<BBhi", 0xB7, 0, 0, retval) + struct.pack("<BBhi", 0x95, 0, 0, 0), 16)
    lic = ct.create_string_buffer(b"GPL")
    log = ct.create_string_buffer(4096)
    attr = ct.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=IIQQIIQII", attr, 0, prog_type, 2, _addr(insns), _addr(lic),
                     1, len(log), _addr(log), 0, 0)
    struct.pack_into("16s", attr, 48, name.encode()[:15])
    return _bpf(PROG_LOAD, attr, f"load {name}")


def prog_test_run(prog_fd: int, data: bytes, repeat: int = 1, ctx: ct.Structure | None = None) -> tuple[int, int]:
    """Run a program on `data` (which starts with a 14-byte Ethernet header).

    Returns (retval, mean duration in ns over `repeat` runs).
    """
    din = ct.create_string_buffer(bytes(data), len(data))
    dout = ct.create_string_buffer(len(data) + 256)
    ctx_addr, ctx_size = (ct.addressof(ctx), ct.sizeof(ctx)) if ctx is not None else (0, 0)
    attr = _attr("=IIIIQQIIIIQQ", prog_fd, 0, len(data), len(dout), _addr(din), _addr(dout),
                 repeat, 0, ctx_size, 0, ctx_addr, 0)
    _bpf(PROG_TEST_RUN, attr, "prog test run")
    retval, = struct.unpack_from("=I", attr, 4)
    duration, = struct.unpack_from("=I", attr, 36)
    return retval, duration
