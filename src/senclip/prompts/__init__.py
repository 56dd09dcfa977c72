"""Prompt sets and the zero-shot text classifier.

Built-in prompt sets (written for senclip) exist for ``eurosat`` (also used for
``eurosat-ms``), ``bigearthnet`` (19-class nomenclature) and ``lucas`` (LUCAS
LC1 level 1, with the letter codes A-H), each in three styles:

* ``generic``: templates such as ``"a satellite photo of {}."`` filled with
  each class's ``name``;
* ``aerial``: what the place looks like from above;
* ``ground``: what a person standing at the spot would photograph.

``all`` concatenates the three. Several prompts per class are ensembled by
:func:`text_classifier`: mean of the L2-normalised text embeddings, renormalised.

Prompt file schema (YAML or JSON; the built-in files in ``prompts/data`` use it)::

    dataset: eurosat              # optional, informational
    description: ...              # optional, informational
    generic:                      # optional: templates, "{}" is the class name
      - "a satellite photo of {}."
    classes:                      # required: keys are the dataset's class names, exactly
      AnnualCrop:
        name: annual crop land    # optional, fills generic templates (default: the key)
        code: B                   # optional class code (LUCAS letter)
        aerial: ["an aerial view of ploughed fields.", ...]   # optional
        ground: ["a photo of a wheat field.", ...]            # optional
      Forest: {name: forest}      # generic-only class entry

A file may hold any subset of the styles, but a style that is used must be
given for every class. Unknown keys, empty lists and templates without ``{}``
are errors. See ``docs/prompts.md``.

Typical use::

    from senclip.prompts import load_prompts, text_classifier
    prompts = load_prompts("ground", classes, "eurosat")      # or "my.yaml:aerial"
    weights = text_classifier(model, prompts)                 # (C, D)
    logits = model.encode_image(images) @ weights.T
"""

from senclip.prompts.classifier import clear_text_classifier_cache, prompts_fingerprint, text_classifier
from senclip.prompts.loading import (
    BUILTIN_FILES,
    available_prompt_sets,
    builtin_path,
    builtin_prompt_file,
    class_info,
    load_prompts,
)
from senclip.prompts.schema import STYLES, ClassPrompts, PromptFile, parse_prompt_dict, read_prompt_file

__all__ = [
    "BUILTIN_FILES", "STYLES", "ClassPrompts", "PromptFile", "available_prompt_sets", "builtin_path",
    "builtin_prompt_file",
    "class_info", "clear_text_classifier_cache", "load_prompts", "parse_prompt_dict", "prompts_fingerprint",
    "read_prompt_file", "text_classifier",
]
