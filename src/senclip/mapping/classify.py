"""Per-tile classifiers for mapping, from ``--classes``/``--prompts`` or ``--classifier``.

Both kinds are :class:`senclip.prompts.classifier.Classifier` objects (embeddings ``(N, D)`` →
probabilities ``(N, C)``): a :class:`~senclip.prompts.classifier.ZeroShotClassifier` of a prompt
set, or a :class:`~senclip.evaluate.fewshot.LinearClassifier` file from ``senclip fewshot``.
Built-in class sets are the built-in prompt sets; a dataset's class names come from its class.
"""

from __future__ import annotations

from pathlib import Path

from senclip.errors import SenclipError
from senclip.evaluate.fewshot import LinearClassifier
from senclip.prompts.classifier import ZeroShotClassifier


def _class_list(classes: str) -> tuple[list[str], str | None]:
    """``--classes`` → (class names, prompt file or dataset for prompts)."""
    from senclip.data import DATASETS
    from senclip.prompts import BUILTIN_FILES, class_info

    key = classes.lower()
    if key in BUILTIN_FILES:
        return list(getattr(DATASETS.get(key), "classes", None) or class_info(key)), None
    path = Path(classes).expanduser()
    if not path.is_file():
        raise SenclipError(f"--classes {classes}: not a built-in class set ({', '.join(BUILTIN_FILES)}) "
                           "and no such file")
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        from senclip.prompts import read_prompt_file

        return list(read_prompt_file(path).classes), str(path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not names:
        raise SenclipError(f"class list {path} is empty; write one class name per line")
    return names, None


def zeroshot_classifier(model, classes: str = "eurosat", prompts: str = "all") -> ZeroShotClassifier:
    """The zero-shot classifier of ``--classes`` (a built-in set such as ``eurosat`` or ``lucas``,
    a YAML/JSON prompt file, or a text file with one class per line) and ``--prompts`` (a style
    of the built-in set or a prompt file, as in ``senclip zeroshot``). A plain class list with a
    style name fills the EuroSAT generic templates with the class names."""
    from senclip.prompts import BUILTIN_FILES, load_prompts, text_classifier
    from senclip.prompts.loading import builtin_prompt_file

    names, prompt_file = _class_list(classes)
    if classes.lower() in BUILTIN_FILES:
        texts = load_prompts(prompts, names, classes.lower())
    elif prompt_file is not None:
        style = prompts if prompts in ("generic", "aerial", "ground") else None
        spec = f"{prompt_file}:{style}" if style else prompt_file
        texts = load_prompts(spec, names, "custom")
    elif Path(prompts.split(":")[0]).suffix.lower() in (".yaml", ".yml", ".json"):
        texts = load_prompts(prompts, names, "custom")
    else:
        templates = builtin_prompt_file("eurosat").generic
        texts = {c: [t.replace("{}", c) for t in templates] for c in names}
    return ZeroShotClassifier(text_classifier(model, texts), float(model.logit_scale), names)


def probe_classifier(path: str | Path, model=None) -> LinearClassifier:
    """Load a few-shot classifier file and check it fits ``model``'s embeddings."""
    clf = LinearClassifier.load(path)
    if model is not None:
        arch = (clf.model or {}).get("model")
        if arch and arch != model.name:
            raise SenclipError(f"classifier {path} was fitted on {arch} embeddings but the model is "
                               f"{model.name}; pass the same --model/--checkpoint as for fewshot")
    return clf
