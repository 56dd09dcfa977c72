"""Names of the input rules of the published TimeSenCLIP tower, free of torch so that command lines
list them without importing it (the rules themselves: :mod:`senclip.models.timesen_reference`)."""

NORMALISATIONS = ("reference-clamped", "reference-eval", "reference-train", "none")
"""``norm`` / ``--series-normalisation`` values; the default for the published weights first."""

__all__ = ["NORMALISATIONS"]
