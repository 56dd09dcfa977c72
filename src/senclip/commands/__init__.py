"""Sub-commands of the ``senclip`` CLI, one module each (see :mod:`senclip.cli`)."""
