"""Errors users see. Every stage raises a subclass of TinypruneError with a message that
says what was wrong and what to do; the CLI prints it without a traceback (unless --debug)
and exits with the class's exit code.

Exit codes (documented in docs/exit-codes.md):
    0  success
    1  internal error (a bug in tinyprune: please report it with --debug output)
    2  bad input (model, data, options, board file)
    3  over budget (model does not fit the board's flash/RAM/MAC limits)
    4  validation failed (bit mismatch, accuracy regression, wrong firmware on device)
    5  missing tool or environment problem (compiler, QEMU, flasher, device not found)

This module may not import anything from tinyprune (it is imported by everything).
"""


class TinypruneError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UserInputError(TinypruneError):
    """Bad model, data, option or board file."""
    exit_code = 2


class UnsupportedModelError(UserInputError):
    """The model uses an operator/option the int8 path or the code generator cannot take."""


class OverBudgetError(TinypruneError):
    """The model does not fit the board (flash, RAM or MACs). ``figures``: {figure: (measured, limit)}
    for each limit exceeded, e.g. {"ram_bytes": (40960, 32768)} (figure names in pipeline/budget_check.py)."""
    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, figures: dict | None = None):
        super().__init__(message, hint)
        self.figures = dict(figures or {})


class ValidationFailed(TinypruneError):
    """Outputs differ from the reference, accuracy regressed, or the device runs other firmware."""
    exit_code = 4


class ToolError(TinypruneError):
    """A required external tool is missing or failed (compiler, QEMU, flasher, serial port)."""
    exit_code = 5


EXIT_CODES = {
    0: "success",
    1: "internal error",
    UserInputError.exit_code: "bad input",
    OverBudgetError.exit_code: "over budget",
    ValidationFailed.exit_code: "validation failed",
    ToolError.exit_code: "missing tool / environment",
}
