"""tinyprune.firmware stage: board support, linker scripts, cross-compiled firmware, flashing.

Public API (lazy, so ``import tinyprune.firmware`` stays cheap)::

    build_firmware(codegen_dir, board, out_dir, *, harness_dir=None, defines=None, opt="-O2")
        -> FirmwareResult            (tinyprune.firmware.build)
    flash(build_dir, board=None, method="auto", *, mount_roots=(), timeout=None, progress=None)
        -> FlashResult               (tinyprune.firmware.flash; drives: tinyprune.firmware.flash_volume)
    render_linker_script(board) -> str   (tinyprune.firmware.linker)
    Elf(path)                            (tinyprune.firmware.elf: sections, symbols, read(addr, n))
    ICOUNT_SHIFT                         QEMU ``-icount shift=`` the QEMU BSPs' counters assume

C sources live in firmware/bsp (startup_cm.c, bsp_mps2.c, bsp_mps3.c + bsp_qemu_cmsdk.c, bsp_stm32f7.c,
selftest_main.c); see docs/firmware.md.
"""

_EXPORTS = {
    "build_firmware": "tinyprune.firmware.build",
    "FirmwareResult": "tinyprune.firmware.build",
    "ICOUNT_SHIFT": "tinyprune.firmware.build",
    "flash": "tinyprune.firmware.flash",
    "FlashResult": "tinyprune.firmware.flash",
    "render_linker_script": "tinyprune.firmware.linker",
    "Elf": "tinyprune.firmware.elf",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tinyprune.firmware' has no attribute {name!r}")
