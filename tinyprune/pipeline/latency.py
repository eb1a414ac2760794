"""Latency a person can read: milliseconds estimated from the instructions counted in QEMU, for the
build's board and for every physical board of the catalog, and whether the build fits each of them.

How the estimate is made (said in summary.json, the CLI and the report): QEMU's ``-icount`` counts
the instructions one inference executes on the simulation twin (same core as the board); at one cycle
per instruction that takes ``instructions / clock_hz`` seconds. It is an estimate: a real board adds
flash wait states and cache misses, and a Cortex-M7 can issue two instructions per cycle, so a real
board's DWT cycle count (``tinyprune validate --port``) is the measurement.

Another board runs the same instructions only when it has the same instruction set (architecture and
DSP extension) as the core that was measured; other boards get no estimate, with the reason.
Flash/RAM fit on other boards uses this build's firmware figures (their board support code differs
by a few KB; a build for that board gives the exact figures).

May import: tinyprune.boards.
"""
from __future__ import annotations

BASIS = ("estimate: instructions per inference counted by QEMU -icount on {twin} ({cpu}) at 1 cycle per "
         "instruction; a real board adds flash wait states and cache misses (and a Cortex-M7 may dual-issue): "
         "measure with `tinyprune validate --port`")


def ms(instructions: float | None, clock_hz: int | None) -> float | None:
    if not instructions or not clock_hz:
        return None
    return round(1e3 * float(instructions) / clock_hz, 4)


def _isa(core) -> tuple:
    return (core.arch, bool(core.dsp), bool(core.mve))


def summarise(board, sim_board, sim: dict | None, firmware: dict | None, boards: list) -> dict:
    """``latency`` record of summary.json. ``sim``: the sim validation summary (counter_per_inference,
    counter_unit, layers); ``firmware``: the board's firmware summary (flash_used, ram_used)."""
    rec = {"measured_on": None, "instructions": None, "clock_hz": board.core.clock_hz, "ms": None,
           "basis": None, "layers": [], "boards": []}
    instr = (sim or {}).get("counter_per_inference") if (sim or {}).get("counter_unit") == "instructions" else None
    if instr is None:
        rec["reason"] = "not estimated: no instruction count (simulation did not run; see the validate-sim stage)"
    else:
        rec.update(measured_on=sim_board.name, instructions=instr, ms=ms(instr, board.core.clock_hz),
                   basis=BASIS.format(twin=sim_board.name, cpu=sim_board.core.cpu))
        rec["layers"] = [{"index": l["index"], "name": l["name"], "instructions": l["mean"],
                          "ms": ms(l["mean"], board.core.clock_hz)} for l in (sim or {}).get("layers") or []]
    fw = firmware or {}
    for b in boards:
        if b.simulation:
            continue
        row = {"board": b.name, "core": b.core.cpu, "clock_hz": b.core.clock_hz,
               "flash_bytes": b.memory.flash_bytes, "ram_bytes": b.memory.ram_bytes,
               "fits_flash": None if fw.get("flash_used") is None else fw["flash_used"] <= b.memory.flash_bytes,
               "fits_ram": None if fw.get("ram_used") is None else fw["ram_used"] <= b.memory.ram_bytes,
               "ms": None, "this_build": b.name == board.name}
        if instr is None:
            row["reason"] = rec["reason"]
        elif _isa(b.core) == _isa(sim_board.core):
            row["ms"] = ms(instr, b.core.clock_hz)
        else:
            row["reason"] = (f"not estimated: {b.core.cpu} ({b.core.arch}{', DSP' if b.core.dsp else ''}) runs other "
                             f"instructions than the measured {sim_board.core.cpu}; run `tinyprune build --board {b.name}`")
        rec["boards"].append(row)
    return rec


def line(rec: dict, board_name: str) -> str:
    """One CLI line: 'est. 2.03 ms per inference on nucleo-f746 at 216 MHz (estimate: ...)'."""
    if rec.get("ms") is None:
        return f"latency: {rec.get('reason', 'not estimated')}"
    return (f"latency: ~{rec['ms']:.3g} ms per inference on {board_name} at {rec['clock_hz'] / 1e6:g} MHz "
            f"({rec['instructions']:,} instructions; {rec['basis']})")
