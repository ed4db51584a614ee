"""Text normalisation for posts, saved with the model that was trained with it.

Tweets and forum posts carry tokens that a news-trained encoder reads as noise: ``t.co``
links (a dozen word pieces of random letters each), ``@handles``, ``$CASHTAGS``, emoji (the
MiniLM vocabulary has none: each becomes ``[UNK]``), ``&amp;`` and "!!!!!!". A
:class:`NormalizeConfig` says what to do with each; training applies it to every row, and
the trained model keeps it in its folder (:data:`NORMALIZE_FILE`) and applies it itself in
``predict_proba``, so ``score``, ``ingest``, the API and the stream workers read texts the
way the model was trained, with no code on the caller's side. A model folder without the
file (every model trained before 0.4) scores raw text, exactly as before.

The default (:data:`DEFAULT_NORMALIZE`) was chosen on the FPB + TFNS *validation* splits by
``benchmarks/sentiment_sources.py`` (frozen MiniLM + logistic regression, macro-F1 averaged per
source): links -> ``http`` and handles -> ``@user`` (the TweetEval convention), everything
else kept, scored 0.7180, against 0.7149 for the same plus emoji names, squashed punctuation
and unescaped HTML, 0.7171 for stripped cashtags and 0.7081 for raw text.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from aigc_apps.errors import DataError
from aigc_apps.fileio import atomic_write

__all__ = ["DEFAULT_NORMALIZE", "NORMALIZE_FILE", "NO_NORMALIZE", "NormalizeConfig"]

NORMALIZE_FILE = "text_normalization.json"

URL_TOKEN, USER_TOKEN, CASHTAG_TOKEN = "http", "@user", "$ticker"
_CHOICES = {
    "cashtags": ("keep", "mask", "strip"),  # strip: "$AAPL" -> "AAPL"
    "urls": ("keep", "mask", "drop"),
    "users": ("keep", "mask", "drop"),
    "emoji": ("keep", "name", "drop"),  # name: "🚀" -> "rocket"
}
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_USER = re.compile(r"(?<![\w@])@\w{1,30}")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9.\-]{0,9})\b")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff]")
_JOINERS = re.compile("[\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")  # ZWJ, variation, skin
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NormalizeConfig:
    """What a model does to a text before reading it (peft-style: saved with the model).

    ``cashtags``: keep | mask (``$ticker``) | strip (``AAPL``); ``urls`` and ``users``:
    keep | mask (``http``, ``@user``) | drop; ``emoji``: keep | name (its Unicode name,
    ``rocket``) | drop; ``max_repeat``: runs of one punctuation mark longer than this are cut
    to it (0: keep); ``unescape_html``: ``&amp;`` -> ``&``.
    """

    cashtags: str = "keep"
    urls: str = "mask"
    users: str = "mask"
    emoji: str = "keep"
    max_repeat: int = 0
    unescape_html: bool = False

    def __post_init__(self) -> None:
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                raise DataError(f"normalisation {key}={getattr(self, key)!r}: use one of "
                                f"{', '.join(allowed)}")
        if not isinstance(self.max_repeat, int) or self.max_repeat < 0:
            raise DataError(f"normalisation max_repeat must be an integer >= 0, "
                            f"got {self.max_repeat!r}")

    @property
    def is_identity(self) -> bool:
        return self == NO_NORMALIZE

    def __call__(self, text: str) -> str:
        return self.apply(text)

    def apply(self, text: str) -> str:
        """``text`` as the model reads it (the identity config returns it unchanged)."""
        if self.is_identity:
            return text
        out = html.unescape(text) if self.unescape_html else text
        out = _sub(_URL, self.urls, URL_TOKEN, out)
        out = _sub(_USER, self.users, USER_TOKEN, out)
        if self.cashtags == "mask":
            out = _CASHTAG.sub(CASHTAG_TOKEN, out)
        elif self.cashtags == "strip":
            out = _CASHTAG.sub(r"\1", out)
        if self.emoji != "keep":
            out = _JOINERS.sub("", out)
            out = _EMOJI.sub(_emoji_name if self.emoji == "name" else " ", out)
        if self.max_repeat:
            n = self.max_repeat
            out = re.sub(rf"([^\w\s])\1{{{n},}}", r"\1" * n, out)
        return _SPACES.sub(" ", out).strip()

    def apply_all(self, texts: list[str]) -> list[str]:
        return texts if self.is_identity else [self.apply(t) for t in texts]

    def apply_rows(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """Copies of labelled rows with their ``text`` normalised (training data)."""
        return rows if self.is_identity else [r | {"text": self.apply(r["text"])} for r in rows]

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown normalisation option(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(known))})")
        return cls(**data)

    @classmethod
    def parse(cls, spec: str | None) -> NormalizeConfig:
        """``default``, ``none``, or ``key=value`` pairs (comma-separated) over the default,
        e.g. ``cashtags=mask,emoji=drop,max_repeat=0``: the ``--normalize`` syntax."""
        text = (spec or "default").strip()
        if text.lower() in ("", "default"):
            return DEFAULT_NORMALIZE
        if text.lower() in ("none", "off", "raw"):
            return NO_NORMALIZE
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip().replace("-", "_"), value.strip()
            if not sep:
                raise DataError(f"--normalize {part!r}: expected key=value")
            if key == "max_repeat":
                if not value.isdigit():
                    raise DataError(f"--normalize max_repeat={value!r}: expected an integer")
                values[key] = int(value)
            elif key == "unescape_html":
                values[key] = value.lower() in ("1", "true", "yes", "on")
            else:
                values[key] = value.lower()
        known = {f.name for f in fields(cls)}
        if set(values) - known:
            raise DataError(f"--normalize: unknown option(s) "
                            f"{', '.join(sorted(set(values) - known))} "
                            f"(known: {', '.join(sorted(known))})")
        return replace(DEFAULT_NORMALIZE, **values)

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory) / NORMALIZE_FILE
        atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> NormalizeConfig | None:
        """The config saved in a model folder; None for a folder without one (old models)."""
        path = Path(directory) / NORMALIZE_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text("utf-8")))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: unreadable normalisation config ({exc})") from None


def _sub(pattern: re.Pattern[str], mode: str, token: str, text: str) -> str:
    if mode == "keep":
        return text
    return pattern.sub(token if mode == "mask" else " ", text)


def _emoji_name(match: re.Match[str]) -> str:
    name = unicodedata.name(match.group(0), "")
    return f" {name.lower()} " if name else " "


NO_NORMALIZE = NormalizeConfig(cashtags="keep", urls="keep", users="keep", emoji="keep",
                               max_repeat=0, unescape_html=False)
DEFAULT_NORMALIZE = NormalizeConfig()
