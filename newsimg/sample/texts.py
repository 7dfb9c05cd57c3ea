"""Texts for pictures: headlines, leads, abstracts, captions and filler, all seeded."""

from __future__ import annotations

import random
import re

from newsimg.sample.model import Attributes
from newsimg.sample.prose import (
    FIRST_NAMES,
    GENERIC_FILLERS,
    LAST_NAMES,
    SECTIONS,
    TOWNS,
    WEEKDAYS,
)
from newsimg.sample.vocabulary import COUNT_WORDS, OBJECTS, SCENES

# Headlines of the vague kind: people, places, dates and the section's topic, no attribute.
VAGUE_HEADLINES = (
    "{town} hosts its last {topic} of {year}",
    "{name} on {topic} and what comes next for {town}",
    "{topic}: {name} returns to {town} after {year}",
    "{town} turns out for the {topic} on {day}",
    "{topic} in {town}: {name}'s big day",
    "What {name} told {town} at the {topic}",
    "{name} and {town} close the {topic} season of {year}",
)


def _slug(text: str, words: int = 8) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words])


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Writer:
    """Texts for pictures: every headline, lead, abstract and caption names the colour, object,
    count and scene; filler paragraphs speak only of the section.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def tags(self, section: str) -> list[str]:
        tags = SECTIONS[section].tags
        return self.rng.sample(tags, self.rng.randint(2, len(tags)))

    def _fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            name=self.person(),
            town=r.choice(TOWNS),
            num=r.randint(5, 90),
            big=r.randint(120, 900),
            pct=f"{r.uniform(1.5, 9.5):.1f}",
            year=r.randint(2008, 2022),
            small=r.randint(5, 9),
            mins=r.randint(95, 170),
        )

    def _parts(self, a: Attributes) -> dict[str, str]:
        """The words that name a picture: quantity + colour, noun, verb, scene, section context."""
        r, thing, style = self.rng, OBJECTS[a.obj], SECTIONS[a.section]
        if a.count == 1:
            article = "an" if a.colour[0] in "aeiou" else "a"
            quantity = r.choices((article, "one", "a single"), weights=(6, 2, 2))[0]
        else:
            quantity = COUNT_WORDS[a.count]
        return {
            "q": f"{quantity} {a.colour}",
            "n": thing.plural if a.count > 1 else a.obj,
            "v": thing.verbs[a.count > 1],
            "scene": r.choice(SCENES[a.scene].phrases),
            "ctx": r.choice(style.contexts),
            "topic": r.choice(style.topics),
            "colour": a.colour,
            "desc": SCENES[a.scene].description,
            "s": "" if a.count > 1 else "s",
        }

    def headline(self, a: Attributes) -> str:
        p = self._parts(a)
        template = self.rng.choice(
            (
                "{q} {n} {v} {scene} {ctx}",
                "{topic}: {q} {n} {v} {scene}",
                "{q} {n} {scene} steal{s} the show {ctx}",
            )
        )
        return _cap(template.format(**p))

    def vague_headline(self, section: str) -> str:
        """A headline that names people, places and the event, never what the photo shows
        (the DAS-RU paper's "Laramie Rangers Play Final Home Games of 2023"): only the section's
        topic hints at the picture; the lead has to say the rest."""
        r = self.rng
        template = r.choice(VAGUE_HEADLINES)
        return _cap(
            template.format(
                topic=r.choice(SECTIONS[section].topics),
                name=self.person(),
                town=r.choice(TOWNS),
                year=r.randint(2019, 2025),
                day=r.choice(WEEKDAYS),
            )
        )

    def sentence_a(self, a: Attributes) -> str:
        """One sentence naming every attribute and the section's context."""
        p = self._parts(a)
        template = self.rng.choice(
            (
                "{q} {n} {v} {scene} {ctx} on {day}, drawing a crowd of onlookers.",
                "{scene}, {q} {n} {v} {ctx}.",
                "It was {q} {n} {scene} that drew the most attention {ctx}.",
            )
        )
        return _cap(template.format(day=self.rng.choice(WEEKDAYS), **p))

    def _sentence_b(self, a: Attributes) -> str:
        """A second sentence that repeats colour, count and object and describes the scene."""
        p = self._parts(a)
        if a.count == 1:
            there = "There was just one {n}, painted {colour}, set against {desc}."
        else:
            there = "There were " + COUNT_WORDS[a.count] + " {n}, each painted {colour}, set "
            there += "against {desc}."
        template = self.rng.choice(
            (
                there,
                "The {colour} {n} fill{s} much of the picture, framed by {desc}.",
                "Against {desc}, the {colour} of the {n} is impossible to miss.",
            )
        )
        return template.format(**p)

    def lead(self, a: Attributes) -> str:
        tail = self._fill(self.rng.choice(SECTIONS[a.section].tails))
        return f"{self.sentence_a(a)} {self._sentence_b(a)} {tail}"

    def filler_paragraphs(self, section: str, n: int) -> list[str]:
        """``n`` paragraphs of 2-4 section sentences, no sentence used twice in one article."""
        pool = self.rng.sample([*SECTIONS[section].fillers, *GENERIC_FILLERS], k=4 * n)
        sizes = [self.rng.randint(2, 4) for _ in range(n)]
        starts = [sum(sizes[:i]) for i in range(n)]
        return [
            " ".join(self._fill(t) for t in pool[start : start + size])
            for start, size in zip(starts, sizes, strict=True)
        ]

    def body(self, a: Attributes, words: int) -> str:
        """An N24News article: the lead, then section filler up to about ``words`` words."""
        sentences = [self.lead(a)]
        pool: list[str] = []
        while sum(len(s.split()) for s in sentences) < words:
            if not pool:
                pool = [*SECTIONS[a.section].fillers, *GENERIC_FILLERS]
                self.rng.shuffle(pool)
            sentences.append(self._fill(pool.pop()))
        if len(sentences) > 2 and sum(len(s.split()) for s in sentences) > 300:
            sentences.pop()
        return " ".join(sentences)

    def caption(self, a: Attributes, credit: bool = False) -> str:
        p = self._parts(a)
        text = _cap(self.rng.choice(("{q} {n} {scene} {ctx}.", "{q} {n} {v} {scene}.")).format(**p))
        return f"{text} Credit: {self.person()} for The Times" if credit else text
