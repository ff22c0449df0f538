"""The memory side of a compiled kernel's main loop: what each global load costs L1 and L2.

For every global load and async copy in the main loop (the largest ``scf.for`` of the TTGIR) this module
combines three things the compile and a CPU run give without a GPU:

* the **layout** of the pointer tensor (TTGIR ``#blocked``, ``#linear`` or a ``#ttg.slice`` of one): which
  lane of which warp holds which element, and in which register order;
* the **instruction**: the widest vector per lane the layout and the addresses allow (a 16-byte
  ``ld.global.v4`` or ``cp.async ... 16``, an 8-byte gather, ...), checked against the global loads of the
  PTX loop (their count and widths must match exactly), which also give its **cache path**: ``ld.global``
  and ``cp.async.ca`` allocate in L1, ``cp.async.cg`` and ``ld.global.cg`` bypass it. A load written as
  inline PTX (an ``ld.global`` in ``tl.inline_asm_elementwise``) counts like a ``tl.load``;
* the **addresses**, from an address trace of the kernel run by Triton's CPU interpreter on real operands
  (:mod:`polysparse.bench.kernels.address_trace`): gathers through tables are data-dependent, so the trace
  is what they touch, not a formula.

Per warp-level request (one instruction of one warp) it counts the 32-byte sectors and 128-byte lines the
active lanes touch and the unique bytes, and charges L1 ``max(1, ceil(max(lines / 4, bytes / 128)))``
cycles: the L1TEX tag stage resolves 4 tags (lines) x 4 sectors per cycle and the data stage moves 128 bytes
per cycle (:data:`L1_SOURCES`); the LSU takes one instruction per cycle, hence at least one. Bytes requested
from L2: every sector of every request for a path that bypasses L1; for an L1-allocating path the distinct
sectors the whole program touches over the traced iterations (first touch misses, the rest hit: the
working set of one program is a few KB against 128-256 KB of L1). Shared-memory traffic of the loop
(``ld.shared``, ``st.shared``, ``ldmatrix``) uses the same data path; it is counted apart, as conflict-free
128-byte wavefronts, since its cost depends on bank conflicts this model does not see.

Everything is normalised per KB of compressed weight (values + metadata) that one program streams per
iteration, and set against what a GPU offers at full DRAM bandwidth (:func:`limits`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SECTOR = 32
LINE = 128
TAGS_PER_CYCLE = 4  # lines (sets) the L1TEX tag stage resolves per cycle, 4 sectors each
DATA_BYTES_PER_CYCLE = 128  # L1TEX / shared-memory data stage, per SM

L1_SOURCES = (
    "L1TEX tag stage: 4 tags x 4 sectors per cycle on GV100 and later (NVIDIA, developer forums: 'Pascal L1 "
    "cache' 49571/14 and 'How does the LSU execute load/store instructions in the Ampere architecture' "
    "273699/8); data stage and shared memory 128 B per cycle per SM (NVIDIA A100 Tensor Core GPU "
    "Architecture whitepaper, 2020; assumed unchanged on Hopper, whose whitepaper gives no per-SM figure); "
    "one LSU instruction per SM per cycle (273699/8)."
)

BYPASS_L1 = ("cp.async.cg", "ld.global.cg", "ld.global.cs", "ld.global.cv", "ld.global.lu")


# ----------------------------------------------------------------------------------------------------------
# Layouts: (warp, lane, register) -> element coordinates
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A distributed layout as linear-layout bases: the coordinates of (register r, lane l, warp w) are the
    XOR of the bases of the set bits of r, l and w (Triton's ``#ttg.linear``; ``#blocked`` converts)."""

    register: tuple[tuple[int, ...], ...]
    lane: tuple[tuple[int, ...], ...]
    warp: tuple[tuple[int, ...], ...]

    @property
    def registers(self) -> int:
        return 1 << len(self.register)

    def contiguous_registers(self) -> int:
        """How many leading registers of a thread are consecutive along one dimension (a vector's most)."""
        if not self.register:
            return 1
        dim = int(np.argmax(np.asarray(self.register[0]) != 0))
        count = 0
        for bit, vector in enumerate(self.register):
            if tuple(vector) != tuple((1 << bit) if d == dim else 0 for d in range(len(vector))):
                break
            count += 1
        return 1 << count

    def coordinates(self, warp: int, lane: int) -> np.ndarray:
        """``(registers, rank)`` element coordinates one thread holds, in register order."""
        rank = len((self.register + self.lane + self.warp)[0])
        base = np.zeros(rank, dtype=np.int64)
        for bit, vector in enumerate(self.lane):
            if lane >> bit & 1:
                base ^= np.asarray(vector, dtype=np.int64)
        for bit, vector in enumerate(self.warp):
            if warp >> bit & 1:
                base ^= np.asarray(vector, dtype=np.int64)
        out = np.tile(base, (self.registers, 1))
        for bit, vector in enumerate(self.register):
            on = (np.arange(self.registers) >> bit & 1).astype(bool)
            out[on] ^= np.asarray(vector, dtype=np.int64)
        return out


def blocked_layout(
    size_per_thread: list[int], threads_per_warp: list[int], warps_per_cta: list[int], order: list[int],
    shape: list[int],
) -> Layout:  # fmt: skip
    """``#ttg.blocked`` over ``shape`` as linear bases (Triton's own conversion: registers along the
    fastest dimension first, then lanes, warps, and the repetitions that cover the rest of the shape;
    a thread or warp bit past the shape broadcasts, a zero basis)."""
    rank = len(shape)

    def unit(dim: int, value: int) -> tuple[int, ...]:
        return tuple(value if d == dim else 0 for d in range(rank))

    register, lane, warp = [], [], []
    for dim in order:
        register += [unit(dim, 1 << b) for b in range(int(math.log2(size_per_thread[dim])))]
    for dim in order:
        tile = size_per_thread[dim]
        lane += [unit(dim, tile << b if tile << b < shape[dim] else 0) for b in
                 range(int(math.log2(threads_per_warp[dim])))]  # fmt: skip
    for dim in order:
        tile = size_per_thread[dim] * threads_per_warp[dim]
        warp += [unit(dim, tile << b if tile << b < shape[dim] else 0) for b in
                 range(int(math.log2(warps_per_cta[dim])))]  # fmt: skip
    for dim in order:
        tile = size_per_thread[dim] * threads_per_warp[dim] * warps_per_cta[dim]
        reps = max(1, shape[dim] // tile)
        register += [unit(dim, tile << b) for b in range(int(math.log2(reps)))]
    # size_per_thread larger than the shape: those register bits repeat elements (wrap to the shape).
    register = [tuple(v % s if s else 0 for v, s in zip(vec, shape, strict=True)) for vec in register]
    return Layout(tuple(register), tuple(lane), tuple(warp))


_INTS = re.compile(r"-?\d+")


def _int_list(text: str) -> list[int]:
    return [int(v) for v in _INTS.findall(text)]


def _bases(text: str, key: str) -> tuple[tuple[int, ...], ...]:
    found = re.search(rf"{key} = \[(.*?)\]\]", text)
    if not found:
        return ()
    return tuple(tuple(_int_list(group)) for group in re.findall(r"\[([^\[\]]*)\]", found.group(1) + "]"))


def parse_layouts(ttgir: str) -> dict[str, str]:
    """``{"#blocked1": "#ttg.blocked<{...}>", ...}``: the layout aliases at the top of a TTGIR module."""
    return dict(re.findall(r"^(#\w+) = (#ttg\.\w+<\{.*\}>)\s*$", ttgir, re.M))


def layout_for(text: str, shape: list[int]) -> Layout | None:
    """The :class:`Layout` of a ``#ttg.blocked``, ``#ttg.linear`` or ``#ttg.slice`` (of one of those)
    attribute over ``shape`` (None for another kind)."""
    if text.startswith("#ttg.slice"):
        found = re.match(r"#ttg\.slice<\{dim = (\d+), parent = (.*)\}>$", text)
        if not found:
            return None
        dim = int(found.group(1))
        parent = layout_for(found.group(2), [*shape[:dim], 1, *shape[dim:]])
        if parent is None:
            return None

        def drop(bases):  # the sliced dimension's coordinate goes; moves only along it become broadcasts
            return tuple(tuple(v for d, v in enumerate(vec) if d != dim) for vec in bases)

        # A register that only moved along the sliced dimension holds the same element: not a second one.
        registers = tuple(vec for vec in drop(parent.register) if any(vec))
        return Layout(registers, drop(parent.lane), drop(parent.warp))
    if text.startswith("#ttg.blocked"):

        def field(name: str) -> list[int]:
            return _int_list(re.search(rf"{name} = \[([^\]]*)\]", text).group(1))

        return blocked_layout(
            field("sizePerThread"), field("threadsPerWarp"), field("warpsPerCTA"), field("order"), shape
        )
    if text.startswith("#ttg.linear"):
        return Layout(_bases(text, "register"), _bases(text, "lane"), _bases(text, "warp"))
    return None


# ----------------------------------------------------------------------------------------------------------
# Reading the compiled code: the main loop's global loads, their source lines, widths and cache paths
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalOp:
    """A global load or async copy of the TTGIR main loop."""

    kind: str  # "load" or "async_copy"
    line: int  # source line of the tl.load
    shape: tuple[int, ...]
    element_bytes: int
    layout: str  # the layout attribute text


_ELEMENT_BYTES = {"i8": 1, "i16": 2, "f16": 2, "bf16": 2, "i32": 4, "f32": 4, "i64": 8, "f64": 8}


def _resolve_line(locs: dict[str, str], ref: str, depth: int = 0) -> int | None:
    """The innermost source line of a TTGIR location (through names, call sites and fusions)."""
    text = locs.get(ref, ref)
    direct = re.search(r'"[^"]*":(\d+):\d+', text)
    if depth > 50:
        return None
    callsite = re.match(r"loc\(callsite\((#loc\d+) at", text)
    if callsite:
        return _resolve_line(locs, callsite.group(1), depth + 1)
    if direct:
        return int(direct.group(1))
    inner = re.search(r"(#loc\d+)", text)
    return _resolve_line(locs, inner.group(1), depth + 1) if inner else None


def _loop_body(text: str, opener: re.Pattern) -> str:
    """The largest region opened by ``opener`` (a line ending in ``{``), up to its closing brace."""
    lines = text.splitlines()
    best: list[str] = []
    for i, line in enumerate(lines):
        if not opener.search(line):
            continue
        depth, body = 0, []
        for inner in lines[i:]:
            depth += inner.count("{") - inner.count("}")
            body.append(inner)
            if depth <= 0:
                break
        if len(body) > len(best):
            best = body
    return "\n".join(best)


_LAYOUT_REF = r"#ttg\.slice<\{[^}]*\}>|#\w+"


def main_loop_global_ops(ttgir: str) -> list[GlobalOp]:
    """The global loads and async copies in the largest ``scf.for`` of a TTGIR module."""
    locs = dict(re.findall(r"^(#loc\d+) = (loc\(.*\))\s*$", ttgir, re.M))
    layouts = parse_layouts(ttgir)
    body = _loop_body(ttgir, re.compile(r"\bscf\.for .*\{\s*$"))
    ops = []
    # A load written as inline PTX (``tl.inline_asm_elementwise`` whose text holds one ``ld.global``): the
    # address trace knows its addresses (the interpreter runs a tl.load on the same source line).
    asm = re.compile(
        r'tt\.elementwise_inline_asm "[^"]*(ld\.global[\w.]*)[^"]*".* -> '
        rf"tensor<([\dx]+)x(\w+), ({_LAYOUT_REF})> loc\((#loc\d+)\)\s*$"
    )
    pattern = re.compile(
        r"(tt\.load|ttg\.async_copy_global_to_local) .*?: "
        rf"tensor<([\dx]+)x!tt\.ptr<(\w+)>, ({_LAYOUT_REF})>.*loc\((#loc\d+)\)\s*$"
    )

    def resolve(layout: str) -> str:
        sliced = re.match(r"#ttg\.slice<\{dim = (\d+), parent = (#\w+)\}>$", layout)
        if sliced:
            return f"#ttg.slice<{{dim = {sliced.group(1)}, parent = {resolve(sliced.group(2))}}}>"
        return layouts.get(layout, layout)

    for line in body.splitlines():
        inline = asm.search(line)
        if inline:
            _, shape, element, layout, loc = inline.groups()
            ops.append(
                GlobalOp(
                    kind="load",
                    line=_resolve_line(locs, loc) or -1,
                    shape=tuple(int(v) for v in shape.split("x")),
                    element_bytes=_ELEMENT_BYTES[element],
                    layout=resolve(layout),
                )
            )
            continue
        found = pattern.search(line)
        if not found:
            continue
        op, shape, element, layout, loc = found.groups()
        ops.append(
            GlobalOp(
                kind="load" if op == "tt.load" else "async_copy",
                line=_resolve_line(locs, loc) or -1,
                shape=tuple(int(v) for v in shape.split("x")),
                element_bytes=_ELEMENT_BYTES[element],
                layout=layouts.get(layout, layout),
            )
        )
    return ops


_PTX_LD = re.compile(r"^\s*(?:@%p\d+\s+)?(ld\.global(?:\.\w+)*|cp\.async\.(?:ca|cg)\.shared\.global)\b(.*)$")
_PTX_SHARED = re.compile(
    r"^\s*(?:@%p\d+\s+)?(ld\.shared(?:\.\w+)*|st\.shared(?:\.\w+)*|ldmatrix\.sync\.aligned\.m8n8\.x(\d))"
)


def _ld_width(opcode: str, operands: str) -> int:
    if opcode.startswith("cp.async"):
        size = re.search(r"\],\s*(0x[0-9a-f]+|\d+)", operands)
        return int(size.group(1), 0) if size else 16
    vec = re.search(r"\.v(\d)", opcode)
    bits = re.search(r"\.[bufs](\d+)$", opcode)
    return (int(vec.group(1)) if vec else 1) * (int(bits.group(1)) // 8 if bits else 4)


def _cache_path(opcode: str) -> str:
    if opcode.startswith("cp.async"):
        return opcode[: len("cp.async.cg")]
    parts = [p for p in opcode.split(".") if p in ("nc", "ca", "cg", "cs", "cv", "lu")]
    return "ld.global" + ("." + parts[0] if parts else "")


def ptx_loop_accesses(ptx_loop: str) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    """Global loads of a PTX main loop as ``{(cache path, bytes per lane): instructions}``, and its
    shared-memory traffic ``{"bytes": per warp per iteration, "instructions": ...}``. (PTX ``.loc`` lines
    cannot tell which ``tl.load`` an instruction belongs to: LLVM moves them; the loads are matched to the
    TTGIR's by width in :func:`analyse`.)"""
    found: dict[tuple[str, int], int] = {}
    shared_bytes = shared_instructions = 0
    for text in ptx_loop.splitlines():
        load = _PTX_LD.match(text)
        if load:
            opcode, operands = load.groups()
            key = (_cache_path(opcode), _ld_width(opcode, operands))
            found[key] = found.get(key, 0) + 1
            continue
        shared = _PTX_SHARED.match(text)
        if shared:
            shared_instructions += 1
            if shared.group(2):  # ldmatrix .xN: N 8x8 matrices of 16-bit values, 128 bytes each
                shared_bytes += int(shared.group(2)) * 128
            else:
                shared_bytes += 32 * _ld_width(shared.group(1), "")
    return found, {"bytes": shared_bytes, "instructions": shared_instructions}


def vector_width(addresses: np.ndarray, mask: np.ndarray, layout: Layout, element_bytes: int, warps: int,
                 limit: int = 16) -> int:  # fmt: skip
    """The widest vector (bytes per lane, at most ``limit``) whose registers are consecutive in memory and
    aligned to the vector for every thread of the trace: what the backend can emit for this load."""
    shape = np.asarray(addresses.shape)
    width = min(limit, layout.contiguous_registers() * element_bytes)
    for warp in range(warps):
        for lane in range(32):
            coords = layout.coordinates(warp, lane) % shape
            starts = addresses[tuple(coords.T)]
            while width > element_bytes:
                per = width // element_bytes
                chunks = starts[: len(starts) // per * per].reshape(-1, per)
                if len(chunks) and (
                    (np.diff(chunks, axis=1) == element_bytes).all() and (chunks[:, 0] % width == 0).all()
                ):
                    break
                width //= 2
    return max(width, element_bytes)


# ----------------------------------------------------------------------------------------------------------
# Requests from addresses
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One warp-level memory instruction: what its active lanes touch."""

    lines: int
    sectors: int
    unique_bytes: int
    sector_ids: frozenset[int]

    @property
    def l1_cycles(self) -> int:
        if not self.unique_bytes:
            return 0
        return max(1, math.ceil(max(self.lines / TAGS_PER_CYCLE, self.unique_bytes / DATA_BYTES_PER_CYCLE)))


def requests(
    addresses: np.ndarray, mask: np.ndarray, layout: Layout, element_bytes: int, width: int, warps: int
) -> list[Request]:
    """The warp-level requests of one execution of a load: ``addresses`` and ``mask`` have the tensor's
    shape; each lane issues ``width``-byte instructions over consecutive registers."""
    per_instruction = max(1, width // element_bytes)
    shape = np.asarray(addresses.shape)
    found = []
    for warp in range(warps):
        lane_bytes = []  # per lane: per instruction, the set of byte addresses
        for lane in range(32):
            coords = layout.coordinates(warp, lane) % shape
            index = tuple(coords.T)
            starts, active = addresses[index], mask[index]
            chunks = []
            for first in range(0, len(starts), per_instruction):
                part = slice(first, first + per_instruction)
                covered = set()
                for start, on in zip(starts[part], active[part], strict=True):
                    if on:
                        covered.update(range(int(start), int(start) + element_bytes))
                chunks.append(covered)
            lane_bytes.append(chunks)
        for j in range(len(lane_bytes[0])):
            touched = set().union(*(chunks[j] for chunks in lane_bytes))
            sectors = frozenset(b // SECTOR for b in touched)
            lines = {b // LINE for b in touched}
            found.append(Request(len(lines), len(sectors), len(touched), sectors))
    return found


# ----------------------------------------------------------------------------------------------------------
# One kernel's main loop, per KB of weight
# ----------------------------------------------------------------------------------------------------------


def analyse(
    ttgir: str, ptx_loop: str, trace: dict[str, Any], num_warps: int, weight_args: tuple[str, ...]
) -> dict[str, Any]:
    """Per load of the main loop: requests, lines and sectors per request, cache path, L1 cycles and L2
    bytes per iteration; totals per KB of weight (the bytes of ``weight_args`` one iteration touches).

    ``trace`` is one program's address trace (:func:`polysparse.bench.kernels.address_trace.trace`):
    ``{"loads": {line: [{"addresses", "mask", "element_bytes"}, ...]}, "args": {name: (start, bytes)}}``.
    Each TTGIR load gets the widest vector its layout and addresses allow; the PTX loop must hold exactly
    those instructions (``ptx_matches``), which also gives each its cache path.
    """
    ops = main_loop_global_ops(ttgir)
    histogram, shared = ptx_loop_accesses(ptx_loop)
    trace = {"args": trace["args"], "loads": _aligned(trace)}
    left = dict(histogram)
    sites, notes = [], []
    total_cycles = total_l2 = weight_bytes = 0.0
    iterations = None
    for op in ops:
        layout = layout_for(op.layout, list(op.shape))
        records = [r for r in trace["loads"].get(op.line, []) if tuple(r["addresses"].shape) == op.shape]
        if not records or layout is None:
            notes.append(f"line {op.line}: {'no trace of this shape' if not records else 'unknown layout'}")
            continue
        n = len(records)
        iterations = n if iterations is None else min(iterations, n)
        first = records[0]
        width = vector_width(first["addresses"], first["mask"], layout, op.element_bytes, num_warps)
        per_thread = layout.registers * op.element_bytes // width
        async_copy = op.kind == "async_copy"
        paths = [
            p for (p, w) in left if w == width and p.startswith("cp.async") == async_copy and left[(p, w)]
        ]
        path = max(paths, key=lambda p: left[(p, width)]) if paths else "?"
        if paths:
            left[(path, width)] -= per_thread
        per_iteration = [
            requests(r["addresses"], r["mask"], layout, op.element_bytes, width, num_warps) for r in records
        ]
        flat = [q for reqs in per_iteration for q in reqs]
        if path.startswith(BYPASS_L1):
            l2_bytes = sum(q.sectors for q in flat) * SECTOR / n
        else:  # first touch misses, later touches by the program hit
            l2_bytes = len(frozenset().union(*(q.sector_ids for q in flat))) * SECTOR / n
        arg = first["argument"]
        unique = sum(len(np.unique(r["addresses"][r["mask"]])) for r in records) * op.element_bytes / n
        if arg in weight_args:
            weight_bytes += unique
        active = [q for q in flat if q.unique_bytes]
        cycles = sum(q.l1_cycles for q in flat) / n
        total_cycles += cycles
        total_l2 += l2_bytes
        sites.append(
            {
                "line": op.line,
                "argument": arg,
                "kind": op.kind,
                "path": path,
                "width": width,
                "requests_per_iteration": len(flat) / n,
                "bytes_per_request": round(sum(q.unique_bytes for q in active) / max(1, len(active)), 1),
                "sectors_per_request": round(sum(q.sectors for q in active) / max(1, len(active)), 2),
                "lines_per_request": round(sum(q.lines for q in active) / max(1, len(active)), 2),
                "l1_cycles_per_iteration": cycles,
                "l2_bytes_per_iteration": l2_bytes,
                "unique_bytes_per_iteration": unique,
            }
        )
    shared_cycles = math.ceil(shared["bytes"] / DATA_BYTES_PER_CYCLE) * num_warps if shared["bytes"] else 0
    per_kb = 1024 / weight_bytes if weight_bytes else None
    return {
        "sites": sites,
        "notes": notes,
        "ptx_loads": {f"{p} {w}B": c for (p, w), c in sorted(histogram.items())},
        "ptx_matches": not notes and all(v == 0 for v in left.values()),
        "iterations_traced": iterations,
        "weight_bytes_per_iteration": weight_bytes,
        "l1_cycles_per_kb": round(total_cycles * per_kb, 2) if per_kb else None,
        "l2_bytes_per_weight_byte": round(total_l2 / weight_bytes, 3) if weight_bytes else None,
        "shared_cycles_per_kb": round(shared_cycles * per_kb, 2) if per_kb else None,
    }


ALLOCATION_ALIGN = 256
"""CUDA allocations start at multiples of 256 bytes (the trace's CPU tensors at 64): addresses are
rebased to that alignment per argument before lines and sectors are counted."""


def _aligned(trace: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The trace's loads with ``argument`` (the tensor argument read, the first that holds the addresses:
    arguments may share storage) and addresses rebased to :data:`ALLOCATION_ALIGN`."""
    out = {}
    for line, records in trace["loads"].items():
        moved = []
        for r in records:
            argument = _argument(trace["args"], r["addresses"][r["mask"]])
            start = trace["args"].get(argument, (0, 0))[0]
            moved.append(dict(r, addresses=r["addresses"] - start % ALLOCATION_ALIGN, argument=argument))
        out[line] = moved
    return out


def _argument(args: dict[str, tuple[int, int]], addresses: np.ndarray) -> str:
    """The kernel argument whose tensor holds these addresses."""
    if not len(addresses):
        return "?"
    first = int(addresses.min())
    for name, (start, size) in args.items():
        if start <= first < start + size:
            return name
    return "?"


# ----------------------------------------------------------------------------------------------------------
# Per GPU: which limit binds, and how much of DRAM bandwidth the kernel can reach
# ----------------------------------------------------------------------------------------------------------


def l1_cycles_per_kb_available(gpu) -> float:
    """L1 cycles the whole GPU has per KB of weight streamed at full DRAM bandwidth."""
    return gpu.sms * gpu.clock_ghz * 1e9 / (gpu.bandwidth_tbs * 1e12 / 1024)


def limits(gpu, instructions_per_kb: float | None, memory: dict[str, Any]) -> dict[str, Any]:
    """Share of each resource the kernel needs at full DRAM bandwidth, the one that binds first, and the
    share of DRAM bandwidth reachable (1 / the largest share, at most 1)."""
    shares = {}
    if instructions_per_kb:
        shares["issue"] = gpu.issue_share(instructions_per_kb)
    if memory.get("l1_cycles_per_kb"):
        shares["L1"] = memory["l1_cycles_per_kb"] / l1_cycles_per_kb_available(gpu)
    if memory.get("l2_bytes_per_weight_byte"):
        shares["L2"] = memory["l2_bytes_per_weight_byte"] * gpu.bandwidth_tbs / gpu.l2_tbs
    if memory.get("shared_cycles_per_kb") is not None and memory.get("l1_cycles_per_kb"):
        both = memory["l1_cycles_per_kb"] + memory["shared_cycles_per_kb"]
        shares["L1 + shared"] = both / l1_cycles_per_kb_available(gpu)
    binding = max(shares, key=shares.get) if shares else None
    return {
        "shares": {k: round(v, 3) for k, v in shares.items()},
        "binds": binding,
        "dram_share_reachable": round(min(1.0, 1 / shares[binding]), 3) if binding else None,
    }
