"""What every ``tabellion`` command shares: exit codes, the error guard, passphrases.

Rules:
- Exit codes are a contract with scripts and never change meaning:
  0 the command did what was asked; 1 the operation failed or was refused (a node or a
  contract said no, a transaction did not commit in time); 2 bad input or usage (a missing
  or unreadable file, a wrong passphrase, an invalid payload, a bad option); 3 the node
  could not be reached (connection refused, timeout, not a Tabellion node).
- A command never shows a traceback: ``guarded`` turns every error Tabellion raises on
  purpose (``LedgerError``), every ``OSError`` and every HTTP transport error into ONE line
  on stderr, ``error: <what went wrong>; <what to do>``, and the matching exit code.
  A bug (any other exception) still ends in one line, with exit code 1 and a request to
  report it, so that a clerk never faces a stack dump.
- Passphrases never appear on a command line (they would land in shell history and in
  ``ps``): they come from a named environment variable, a file, or a hidden prompt.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import httpx
import typer

from ledger.errors import (
    DecodeError,
    GenesisError,
    InvalidTransaction,
    KeyFileError,
    LedgerError,
)
from ledger.files import read_text_bounded

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the operation failed or was refused; 2 bad input (missing "
    "file, wrong passphrase, invalid payload, bad option); 3 the node could not be reached."
)
PASSPHRASE_FILE_BYTES_MAX = 4096


class CliError(Exception):
    """An error the CLI detected itself; ``exit_code`` is one of the codes above."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def usage_error(message: str) -> NoReturn:
    raise CliError(message, EXIT_USAGE)


def _exit_code_of(exc: LedgerError, failed: int) -> int:
    # Input the person in front of the terminal controls is a usage problem (2); whatever
    # the network or the chain decided is an operation failure (1).
    if isinstance(exc, KeyFileError | GenesisError | DecodeError | InvalidTransaction):
        return EXIT_USAGE
    if type(exc).__name__ == "ConfigError":  # node.errors.ConfigError, without importing node
        return EXIT_USAGE
    return failed


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr as one line and exit with ``code``."""
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(code)


P = ParamSpec("P")
R = TypeVar("R")


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a Typer command so that any error becomes one line and an exit code."""
    return guarded_failing_with(EXIT_FAILED)(command)


def guarded_failing_with(failed: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``guarded`` for a command whose own exit codes give another meaning to 1 (``audit``:
    1 means integrity findings): an operation that fails, a bug, exits ``failed``."""

    def guard(command: Callable[P, R]) -> Callable[P, R]:
        return _guard(command, failed)

    return guard


def _guard(command: Callable[P, R], failed: int) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # Typer's own exits and usage errors (exit code 2) keep their meaning
        except CliError as exc:
            fail(exc.message, exc.exit_code)
        except LedgerError as exc:
            fail(str(exc), _exit_code_of(exc, failed))
        except httpx.TimeoutException as exc:
            fail(f"the node did not answer in time ({_url_of(exc)}); check that it is running "
                 "and reachable, or retry with a longer --timeout", EXIT_UNREACHABLE)
        except httpx.TransportError as exc:
            fail(f"cannot reach the node at {_url_of(exc)} ({_reason(exc)}); check --node and "
                 "that the node is running (tabellion status --node URL)", EXIT_UNREACHABLE)
        except FileNotFoundError as exc:
            fail(f"{exc.filename or 'a file'} does not exist; check the path", EXIT_USAGE)
        except PermissionError as exc:
            fail(f"permission denied on {exc.filename}; check the file's owner and mode",
                 EXIT_USAGE)
        except OSError as exc:
            where = f" on {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", failed)
        except Exception as exc:  # a bug: still one line, never a stack dump for a clerk
            fail(f"unexpected {type(exc).__name__}: {exc}. This is a bug in tabellion; "
                 "please report it with the command you ran", failed)

    return wrapper


def _url_of(exc: httpx.HTTPError) -> str:
    try:
        request = exc.request
    except RuntimeError:  # httpx raises when no request is attached
        return "the given URL"
    return str(request.url.copy_with(query=None))


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    if "Connection refused" in text or ("ConnectError" in type(exc).__name__ and not text):
        return "connection refused"
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --------------------------------------------------------------------------- passphrases


def passphrase_from_env(var: str) -> bytes:
    value = os.environ.get(var)
    if value is None:
        usage_error(f"the environment variable {var} is not set; export it with the key "
                    "passphrase, or omit --passphrase-env to be prompted")
    if not value:
        usage_error(f"the environment variable {var} is empty; it must hold the passphrase")
    return value.encode()


def read_input_file(path: Path, bytes_max: int, what: str) -> str:
    """The UTF-8 text of a file the person named on the command line, at most ``bytes_max``
    bytes; a usage error (exit 2) saying which file and why otherwise."""
    return read_text_bounded(path, bytes_max, what, lambda message: CliError(message, EXIT_USAGE))


def passphrase_from_file(path: Path) -> bytes:
    """The passphrase in ``path``; its trailing line break is not part of it."""
    value = read_input_file(path, PASSPHRASE_FILE_BYTES_MAX, "passphrase file").rstrip("\r\n")
    if not value:
        usage_error(f"{path} is empty; it must hold the passphrase")
    return value.encode()


def read_passphrase(env: str | None, *, confirm: bool, what: str) -> bytes:
    """The passphrase from ``env`` when given, else from a hidden prompt.

    ``confirm`` asks twice (for a new key). When the input ends before a passphrase is
    typed, the command stops with a usage error saying what to do.
    """
    if env:
        return passphrase_from_env(env)
    try:
        value: str = typer.prompt(f"Passphrase for {what}", hide_input=True,
                                  confirmation_prompt=confirm)
    except typer.Abort as exc:  # end of input, or Ctrl-C at the prompt
        raise CliError(f"no passphrase given for {what}; type it at the prompt or pass "
                       "--passphrase-env VAR with the passphrase in VAR", EXIT_USAGE) from exc
    return value.encode()


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data``; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise CliError(f"{path} already exists; refusing to overwrite a secret",
                       EXIT_USAGE) from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# Options shared by every command that opens a key file (one declaration, one help text).
PassphraseEnv = Annotated[str | None, typer.Option(
    "--passphrase-env", metavar="VAR",
    help="Read the key passphrase from this environment variable instead of a prompt.")]
PassphraseFile = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="Read the key passphrase from this file (mode 0600).")]
