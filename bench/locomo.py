"""Loader for the LoCoMo long-conversation benchmark (development split).

Each conversation becomes one namespace; each dialogue turn becomes one item to index, and
each question with valid evidence becomes one retrieval query whose relevant items are the
evidence turns. The data directory defaults to ``<workspace>/shared/data/locomo-dev`` and
can be overridden with the ``HIVEMEM_LOCOMO_DIR`` environment variable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = Path(
    os.environ.get(
        "HIVEMEM_LOCOMO_DIR",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo-dev",
    )
)

_SESSION_KEY = re.compile(r"session_(\d+)")
# Tolerates malformed evidence such as "D8:6; D9:17" or "D:11:26".
_DIA_ID = re.compile(r"D:?(\d+):(\d+)")


@dataclass(frozen=True)
class Turn:
    """One dialogue turn, the unit that is stored as a memory item."""

    dia_id: str
    speaker: str
    text: str
    session: int
    date_time: str
    blip_caption: str | None = None


@dataclass(frozen=True)
class Question:
    """A question with the ``dia_id``s of the turns that answer it (all present in turns)."""

    question: str
    evidence: list[str]
    category: int


@dataclass
class Conversation:
    """A whole conversation: its turns (in order) and its retrieval questions."""

    sample_id: str
    namespace: str
    speaker_a: str
    speaker_b: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    dropped_questions: int = 0  # questions left without any valid evidence id
    dropped_evidence: int = 0  # evidence ids that did not resolve to a turn


def parse_evidence(raw: list[str], valid: set[str]) -> tuple[list[str], int]:
    """Normalise evidence ids; return (valid ids, deduplicated in order, count of bad ids)."""
    out: list[str] = []
    bad = 0
    for entry in raw:
        found = [f"D{s}:{t}" for s, t in _DIA_ID.findall(entry)]
        bad += sum(1 for d in found if d not in valid) + (0 if found else 1)
        out.extend(d for d in found if d in valid and d not in out)
    return out, bad


def load_conversation(file: Path) -> Conversation:
    """Load one LoCoMo conversation file (e.g. ``26.json``)."""
    data = json.loads(file.read_text(encoding="utf-8"))
    sample_id = str(data.get("sample_id") or f"conv-{file.stem}")
    namespace = "locomo/" + re.sub(r"[^a-z0-9\-_./]", "-", sample_id.lower())
    conv = Conversation(sample_id, namespace, data["speaker_a"], data["speaker_b"])
    sessions = sorted(int(m.group(1)) for k in data if (m := _SESSION_KEY.fullmatch(k)) and data[k])
    for n in sessions:
        when = str(data.get(f"session_{n}_date_time", ""))
        for t in data[f"session_{n}"]:
            conv.turns.append(
                Turn(t["dia_id"], t["speaker"], t["text"], n, when, t.get("blip_caption") or None)
            )
    valid = {t.dia_id for t in conv.turns}
    for q in data.get("qa", []):
        if not q.get("evidence"):
            continue
        evidence, bad = parse_evidence(q["evidence"], valid)
        conv.dropped_evidence += bad
        if not evidence:
            conv.dropped_questions += 1
            continue
        conv.questions.append(Question(q["question"], evidence, int(q.get("category", 0))))
    return conv


def load_conversations(path: Path | str = DEFAULT_DIR) -> list[Conversation]:
    """Load every ``*.json`` conversation under ``path``, ordered by file name."""
    files = sorted(Path(path).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no LoCoMo *.json files in {path}")
    return [load_conversation(f) for f in files]


def turn_text(turn: Turn, context: bool = True) -> str:
    """Text to index for a turn.

    With ``context`` the speaker name and session date are prefixed and a shared image's
    caption is appended, so that "who", "when" and "what photo" questions can match.
    """
    if not context:
        return turn.text
    text = f"{turn.speaker}: {turn.text}"
    if turn.blip_caption:
        text += f" [shares {turn.blip_caption}]"
    return f"[{turn.date_time}] {text}" if turn.date_time else text
