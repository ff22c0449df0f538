"""The calibration spec is parsed once into typed parts; its record in polysparse.json is structured."""

import pytest

from polysparse.sparsify.calibration_spec import CalibrationSpec, SourcePart, TranslatePart
from polysparse.sparsify.corpora import SourceSpec, SourceSpecError


def test_a_mixture_of_sources_and_translation_prompts():
    spec = CalibrationSpec.parse("handbook:de=3,translate:deu->en:gettext,shots=2=1")
    source, translate = spec.parts
    assert source == SourcePart(SourceSpec.parse("handbook:de"), 0.75)
    assert translate == TranslatePart("translate:deu->en:gettext,shots=2", "de", "en", "gettext", 2, 0.25)
    assert translate.parallel_spec == "gettext:de->en"
    assert spec.to_dict() == {
        "spec": "handbook:de=3,translate:deu->en:gettext,shots=2=1",
        "language": "de+de->en",
        "source": "handbook+gettext (translation prompts)",
        "parts": [
            {"kind": "source", "spec": "handbook:de", "source": "handbook", "language": "de", "weight": 0.75},
            {
                "kind": "translate",
                "spec": "translate:deu->en:gettext,shots=2",
                "source": "gettext",
                "language": "de->en",
                "src": "de",
                "tgt": "en",
                "shots": 2,
                "weight": 0.25,
            },
        ],
    }


def test_languages_are_normalised_for_the_record_and_the_argument_kept_for_the_loader():
    (part,) = CalibrationSpec.parse("manpages:German").parts
    assert part.language == "de" and part.spec == "manpages:German"
    assert CalibrationSpec.parse("text:notes.txt").language is None
    assert CalibrationSpec.parse("handbook:xx").language == "xx"  # the loader refuses it, listing languages


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty calibration spec"),
        ("handbook:de=0,handbook:en=1", "mixture weight must be positive"),
        ("translate:de:gettext", "malformed translation spec"),
        ("translate:de->en:gettext,shots=0", "invalid option"),
    ],
)
def test_grammar_errors(text, message):
    with pytest.raises(SourceSpecError, match=message):
        CalibrationSpec.parse(text)
