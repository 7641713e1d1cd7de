"""Copyright guard: imitation requests for registered names only; output similarity to registered works."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.guard import GuardError, check_output, check_prompt, load_registry

REGISTRY = '''
[[creator]]
name = "霧島 透"
aliases = ["Toru Kirishima", "Kirishima"]

[[work]]
title = "月影の港"
creator = "霧島 透"
file = "tsukikage.txt"

[[work]]
title = "白い灯台"
creator = "霧島 透"
'''

WORK = (
    "夜明け前の港には、まだ誰も名前を知らない風が吹いていた。灯台の光は三度まわって海を撫で、"
    "そのたびに古い漁船の影が桟橋の上でゆっくりと伸びては縮んだ。少女は錆びた鉄柵に肘をつき、"
    "遠い沖に消えた父の船の帆を、記憶の底から一枚ずつ拾い上げるように思い出していた。"
)


@pytest.fixture
def registry(tmp_path: Path):
    (tmp_path / "tsukikage.txt").write_text(WORK, encoding="utf-8")
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY, encoding="utf-8")
    return load_registry(path)


@pytest.mark.parametrize("prompt, flagged", [
    ("霧島透風に短編を書いて", "霧島透風"),
    ("霧島 透さんのタッチで描いてください", "霧島 透さんのタッチ"),
    ("霧島透っぽく書いて", "霧島透っぽく"),
    ("霧島透の文体で手紙を", "霧島透の文体"),
    ("霧島透のような文章で", "霧島透のような"),
    ("『月影の港』の続きを書いて", "月影の港』の続き"),
    ("白い灯台みたいな話", "白い灯台みたい"),
    ("Write a story in the style of Toru Kirishima.", "in the style of Toru Kirishima"),
    ("Describe the sea like Kirishima would write it", "like Kirishima would write"),
    ("ｷﾘｼﾏ… no: 霧島　透風で", "霧島　透風"),
])
def test_prompt_imitation_of_registered_names(registry, prompt, flagged):
    findings = check_prompt(prompt, registry)
    assert [f.text for f in findings] == [flagged]
    f = findings[0]
    assert f.entity == "COPYRIGHT_STYLE" and prompt[f.start:f.end] == flagged


@pytest.mark.parametrize("prompt", [
    "村上春樹風に書いて",  # not registered: style as such is not protected
    "霧島透の経歴を教えて",  # a question about the creator, not an imitation
    "霧島の風が強い",  # 霧島 alone is not a registered name, and の風 is wind
    "I like Kirishima a lot",
    "Kirishimaya restaurant style menu",  # part of another word
])
def test_prompts_that_must_not_fire(registry, prompt):
    assert check_prompt(prompt, registry) == []


def test_output_copying_a_registered_work_is_flagged_with_both_numbers(registry):
    copied = "少女は錆びた鉄柵に肘をつき、\n遠い沖に消えた父の船の帆を、記憶の底から一枚ずつ拾い上げるように思い出していた。"
    [f] = check_output(copied, registry, threshold=0.5)
    assert f.entity == "COPYRIGHT_SIMILAR"
    assert f.detail["work"] == "月影の港"
    assert f.detail["containment"] == 1.0  # every 5-gram of the output is in the work
    # the line break is ignored: the whole output (53 characters without it) is one common run
    assert f.detail["longest_common"] == len(copied) - 1
    assert f.text == copied


def test_paraphrase_scores_below_a_verbatim_copy_and_threshold_decides(registry):
    paraphrase = "夜明けの港に名もない風が吹き、灯台の光が海を撫でていた。少女は父の船を思い出した。"
    loose = check_output(paraphrase, registry, threshold=0.0)
    assert loose and 0 < loose[0].detail["containment"] < 1
    assert loose[0].detail["longest_common"] < 20
    assert check_output(paraphrase, registry, threshold=0.9) == []


def test_long_verbatim_passage_inside_a_long_output_is_flagged(registry):
    output = "以下は私の創作です。" * 40 + WORK[:100] + "以上。" * 20
    [f] = check_output(output, registry, threshold=0.9, verbatim_chars=80)
    assert f.detail["longest_common"] >= 100 and f.text == WORK[:100]


def test_unrelated_output_is_clean(registry):
    assert check_output("本日の議事録です。予算案を承認しました。次回は来月です。", registry) == []


def test_registry_errors_are_one_line(tmp_path: Path):
    with pytest.raises(GuardError, match="not found"):
        load_registry(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[work]]\ncreator = 'x'\n", encoding="utf-8")
    with pytest.raises(GuardError, match=r"work\[0\]: needs a non-empty title"):
        load_registry(bad)
    bad.write_text("[[work]]\ntitle = 'x'\nfile = 'nope.txt'\n", encoding="utf-8")
    with pytest.raises(GuardError, match="cannot read"):
        load_registry(bad)


def test_shipped_sample_registry_loads_and_works():
    sample = Path(__file__).resolve().parents[1] / "samples" / "copyright-registry.toml"
    registry = load_registry(sample)
    assert check_prompt("水無月かえでっぽく書いて", registry)
    assert all(w.text.strip() for w in registry.works)
