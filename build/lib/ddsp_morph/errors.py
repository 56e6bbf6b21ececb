"""Errors that reach the user as one line, and the wrapper every entry point shares."""

import functools
import sys


class DDSPMorphError(Exception):
    """A problem the user can fix (bad file, missing SoundFont, wrong config value): one line."""


class ConfigError(DDSPMorphError):
    """A config value of the wrong kind or out of range; the message names the key."""


class AudioFileError(DDSPMorphError):
    """An audio file that cannot be read; the message names the file."""


def positive_int(value, name: str, *, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high], else a one-line error naming ``name``."""
    try:
        n = int(str(value))
    except ValueError:
        n = None
    if n is None or n < low or (high is not None and n > high):
        bound = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise DDSPMorphError(f"{name}: expected {bound}, got {value!r}")
    return n


def require_f0_loudness(model, run_dir) -> None:
    """The realtime synth and its exports play f0 and loudness only: a model conditioned on
    more is refused in one line."""
    extra = list(getattr(model, "context_inputs", []) or [])
    if extra:
        raise DDSPMorphError(
            f"{run_dir}: this model is also conditioned on {extra}; the realtime synth and the "
            "export play f0 and loudness only (train one with conditioning=f0_loud)"
        )


def exits_on_error(entry):
    """Every entry point's wrapper: a ``DDSPMorphError`` (bad input the user can fix) or a
    required config value left out ends the program with one line on stderr and exit code 2;
    anything else is a bug and keeps its traceback."""

    @functools.wraps(entry)
    def wrapped(*args, **kwargs):
        from omegaconf.errors import MissingMandatoryValue

        try:
            return entry(*args, **kwargs)
        except DDSPMorphError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except MissingMandatoryValue as e:  # a ``???`` of the task's config left unset
            key = getattr(e, "full_key", None) or "a value"
            print(f"error: {key}=... is required (give it on the command line)", file=sys.stderr)
            sys.exit(2)

    return wrapped
