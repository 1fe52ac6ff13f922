"""One family of errors, with messages written for a student.

The app catches `GptvizError` and shows its message; anything else is a bug.
"""


class GptvizError(Exception):
    """Base class: the message is shown to the student as it is."""


class InputError(GptvizError):
    """Text, prompt or file the student gave cannot be used."""


class TokenizerError(InputError):
    """A prompt or text the tokenizer cannot encode."""


class ConfigError(GptvizError):
    """Model or training settings that do not fit together."""


class CheckpointError(GptvizError):
    """A checkpoint that cannot be saved or loaded safely."""


class TrainingError(GptvizError):
    """Training stopped because the loss diverged (NaN or inf)."""
