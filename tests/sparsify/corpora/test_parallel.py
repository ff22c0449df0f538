import pytest

from polysparse.sparsify.corpora import EmptyCorpusError, ParallelPair, ParallelSpec, UnknownLanguageError
from polysparse.sparsify.corpora.parallel import (
    MAX_PROMPT_SENTENCE_CHARS,
    load_parallel,
    parse_parallel_spec,
    translation_prompts,
)


def pairs_de_en(n: int) -> list[ParallelPair]:
    return [
        ParallelPair(
            src=f"Satz Nummer {i} über Drachen.",
            tgt=f"Sentence number {i} about kites.",
            src_lang="de",
            tgt_lang="en",
            pair_id=f"toy#{i}",
        )
        for i in range(n)
    ]


def shots_of(prompt: str) -> list[tuple[str, str]]:
    lines = prompt.split("\n")
    assert lines[-1] == ""
    return list(zip(lines[:-1:2], lines[1:-1:2], strict=True))


def test_prompt_format_exactly():
    pairs = [
        ParallelPair("Der Drachen steigt hoch.", "The kite climbs high.", "de", "en", "a"),
        ParallelPair("Die Schnur ist lang genug.", "The string is long enough.", "de", "en", "b"),
    ]
    (prompt,) = translation_prompts(pairs, "de", "en", shots=2, seed=0)
    assert prompt in (
        "German: Der Drachen steigt hoch.\nEnglish: The kite climbs high.\n"
        "German: Die Schnur ist lang genug.\nEnglish: The string is long enough.\n",
        "German: Die Schnur ist lang genug.\nEnglish: The string is long enough.\n"
        "German: Der Drachen steigt hoch.\nEnglish: The kite climbs high.\n",
    )
    (reverse,) = translation_prompts(pairs[:1], "English", "de_DE", shots=1)
    assert reverse == "English: The kite climbs high.\nGerman: Der Drachen steigt hoch.\n"


def test_prompts_use_each_pair_once_and_are_deterministic():
    pairs = pairs_de_en(22)
    prompts = translation_prompts(pairs, "de", "en", shots=4, seed=7)
    assert len(prompts) == 5  # 22 // 4
    used = [shot for p in prompts for shot in shots_of(p)]
    assert len(used) == 20 and len(set(used)) == 20
    assert all(s.startswith("German: Satz") and t.startswith("English: Sentence") for s, t in used)
    # the German and English sides of each shot belong together
    assert all(s.split()[3] == t.split()[3] for s, t in used)
    assert prompts == translation_prompts(pairs, "de", "en", shots=4, seed=7)
    assert prompts != translation_prompts(pairs, "de", "en", shots=4, seed=8)


def test_more_prompts_than_one_pass_reuse_pairs_only_after_all_were_used():
    pairs = pairs_de_en(10)
    prompts = translation_prompts(pairs, "de", "en", shots=4, seed=1, count=6)
    assert len(prompts) == 6
    shots = [shot for p in prompts for shot in shots_of(p)]
    assert len(set(shots[:8])) == 8  # two full prompts of the first pass: all different
    assert len(set(shots[:10])) == 10  # the first pass's leftover two open the third prompt
    for prompt in prompts:
        assert len(set(shots_of(prompt))) == 4  # never the same pair twice in a prompt
    assert len(set(shots)) == 10


def test_length_caps_and_other_languages():
    long_pair = ParallelPair("Lang " * 200, "Long " * 200, "de", "en", "long")
    short_pair = ParallelPair("Ja.", "Yes.", "de", "en", "short")
    french = ParallelPair("Le cerf-volant monte très haut.", "The kite climbs very high.", "fr", "en", "fr")
    pairs = [*pairs_de_en(2), long_pair, short_pair, french]
    prompts = translation_prompts(pairs, "de", "en", shots=2)
    assert (
        len(prompts) == 1
        and "Lang" not in prompts[0]
        and "Ja." not in prompts[0]
        and "cerf" not in prompts[0]
    )
    assert len(long_pair.src) > MAX_PROMPT_SENTENCE_CHARS
    multiline = ParallelPair(
        "Erste Zeile\nzweite Zeile des Satzes", "First line\nsecond line of it", "de", "en", "m"
    )
    (prompt,) = translation_prompts([multiline], "de", "en", shots=1)
    assert prompt == "German: Erste Zeile zweite Zeile des Satzes\nEnglish: First line second line of it\n"
    with pytest.raises(EmptyCorpusError):
        translation_prompts(pairs, "de", "en", shots=3)
    with pytest.raises(ValueError):
        translation_prompts(pairs, "de", "en", shots=0)


def test_parallel_specs():
    assert parse_parallel_spec("gettext:de") == ("gettext", "de", "en")
    assert parse_parallel_spec("handbook:en->ja_JP") == ("handbook", "en", "ja")
    assert parse_parallel_spec("install-guide:German->French") == ("install-guide", "de", "fr")
    with pytest.raises(ValueError, match="parallel sources: gettext, handbook, install-guide"):
        parse_parallel_spec("manpages:de")
    with pytest.raises(ValueError):
        parse_parallel_spec("gettext")
    with pytest.raises(UnknownLanguageError):
        parse_parallel_spec("gettext:Elvish")


def test_real_install_guide_pairs_both_directions(require_installed):
    require_installed("/usr/share/doc/installation-guide-amd64/de", "installation-guide-amd64")
    to_english = load_parallel(ParallelSpec.parse("install-guide:de"))
    from_english = load_parallel(ParallelSpec.parse("install-guide:en->de"))
    assert len(to_english) > 300 and len(to_english) == len(from_english)
    assert to_english[0].src == from_english[0].tgt and to_english[0].tgt == from_english[0].src
    assert (to_english[0].src_lang, to_english[0].tgt_lang) == ("de", "en")
    prompts = translation_prompts(to_english, "de", "en", shots=4, count=3)
    assert len(prompts) == 3 and all(
        p.startswith("German: ") and p.count("\nEnglish: ") == 4 for p in prompts
    )
