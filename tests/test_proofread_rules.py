"""The proofreader's rule families, each with sentences that break the official style and trap
sentences that look alike but are correct. Expected forms come from the guidelines:
「公用文における漢字使用等について」(平成22年内閣訓令第1号) 1(2)ア–キ and 2(1), 「送り仮名の付け方」
通則6・7, 「常用漢字表」, 「公用文作成の考え方」(2022)."""

from __future__ import annotations

import pytest

from sekisho.proofread import proofread


def found(text: str, family: str) -> list[tuple[str, str | None]]:
    return [(f.text, f.suggestion) for f in proofread(text) if f.family == family]


# (text, family, flagged text, suggested form)
POSITIVES = [
    # 接続詞: 1(2)オ — kana, except 及び 並びに 又は 若しくは
    ("住民および事業者に周知する。", "conjunction", "および", "及び"),
    ("氏名もしくは名称を記載する。", "conjunction", "もしくは", "若しくは"),
    ("申請者または代理人が来庁する。", "conjunction", "また", "又"),  # また|は -> 又|は
    ("国ならびに県の補助を受ける。", "conjunction", "ならび", "並び"),
    ("但し、緊急の場合を除く。", "conjunction", "但し", "ただし"),
    ("尚、詳細は別紙による。", "conjunction", "尚", "なお"),
    ("従って、申請は無効である。", "conjunction", "従っ", "したがっ"),
    ("又、期限は厳守すること。", "conjunction", "又", "また"),
    # 副詞: 1(2)イ — kanji; 常用漢字表にない音訓 — kana
    ("結果を直ちに公表し、かならず報告する。", "adverb", "かならず", "必ず"),
    ("制度をさらに充実させる。", "adverb", "さらに", "更に"),
    ("この点がもっとも重要である。", "adverb", "もっとも", "最も"),
    ("今回はじめて参加する団体がある。", "adverb", "はじめて", "初めて"),
    ("作業は概ね終了した。", "adverb", "概ね", "おおむね"),
    ("予め連絡すること。", "adverb", "予め", "あらかじめ"),
    ("余程の理由がない限り認めない。", "adverb", "余程", "よほど"),
    # 連体詞: 1(2)イ
    ("わが国の制度を紹介する。", "adnominal", "わが", "我が"),
    ("おおきな課題がある。", "adnominal", "おおきな", "大きな"),
    ("所謂待機児童の問題である。", "adnominal", "所謂", "いわゆる"),
    # 代名詞: 1(2)ア, 指示代名詞は仮名
    ("われわれの責務である。", "pronoun", "われわれ", "我々"),
    ("此れを改める。", "pronoun", "此れ", "これ"),
    # 形式名詞: 1(2)キ
    ("申請する時は、書類を提出すること。", "formal-noun", "時", "とき"),
    ("必要な時は連絡する。", "formal-noun", "時", "とき"),
    ("許可しない事がある。", "formal-noun", "事", "こと"),
    ("確認した所、誤りがあった。", "formal-noun", "所", "ところ"),
    ("現在の所、問題はない。", "formal-noun", "所", "ところ"),
    ("次の通りである。", "formal-noun", "通り", "とおり"),
    ("述べた通り、制度が変わった。", "formal-noun", "通り", "とおり"),
    ("正しい物と認める。", "formal-noun", "物", "もの"),
    ("賛成する訳にはいかない。", "formal-noun", "訳", "わけ"),
    ("説明すると共に意見を聞く。", "formal-noun", "共", "とも"),
    ("特別の場合を除く他、許可しない。", "formal-noun", "他", "ほか"),
    ("雨天の為中止する。", "formal-noun", "為", "ため"),
    # 補助動詞・補助形容詞: 1(2)キ (…てください …ていく …ておく …てよい …ていただく)
    ("書類を提出して下さい。", "subsidiary", "下さい", "ください"),
    ("窓口でお待ち下さい。", "subsidiary", "下さい", "ください"),
    ("報告して頂く。", "subsidiary", "頂く", "いただく"),
    ("負担が増えて行く。", "subsidiary", "行く", "いく"),
    ("寒くなって来る。", "subsidiary", "来る", "くる"),
    ("通知して置く。", "subsidiary", "置く", "おく"),
    ("連絡しても良い。", "subsidiary", "良い", "よい"),
    ("担当者は不在にして居ります。", "subsidiary", "居り", "おり"),
    # 助動詞・助詞: 1(2)カ, and …について …にすぎない …かもしれない (1(2)キ)
    ("以下の様に定める。", "auxiliary", "様", "よう"),
    ("3日程経過した。", "auxiliary", "程", "ほど"),
    ("これ迄の経過を説明する。", "auxiliary", "迄", "まで"),
    ("これに付いて考慮する。", "auxiliary", "付い", "つい"),
    ("調査に過ぎない。", "auxiliary", "過ぎ", "すぎ"),
    ("間違いかも知れない。", "auxiliary", "知れ", "しれ"),
    ("本庁舎に於いて開催する。", "auxiliary", "於い", "おい"),
    # できる ある ない いる なる いたす
    ("誰でも利用が出来る。", "kana-verb", "出来る", "できる"),
    ("参加出来ない。", "kana-verb", "出来", "でき"),
    ("問題が有る。", "kana-verb", "有る", "ある"),
    ("欠点が無い。", "kana-verb", "無い", "ない"),
    ("対象は全世帯と成る。", "kana-verb", "成る", "なる"),
    ("よろしくお願い致します。", "kana-verb", "致し", "いたし"),
    # 送り仮名: 2(1) の一覧, 通則7, 活用のある語は本則
    ("取り扱いに注意する。", "okurigana", "取り扱い", "取扱い"),
    ("申し込みを受け付ける。", "okurigana", "申し込み", "申込み"),
    ("転入の手続きを行う。", "okurigana", "手続き", "手続"),
    ("問い合わせに回答する。", "okurigana", "問い合わせ", "問合せ"),
    ("受け付けで相談する。", "okurigana", "受け付け", "受付"),
    ("問い合わせ先に連絡する。", "okurigana", "問い合わせ先", "問合せ先"),
    ("申し込み書を提出する。", "okurigana", "申し込み", "申込"),  # 申込（書）: 通則7
    ("取り扱い説明書を読む。", "okurigana", "取り扱い説明書", "取扱説明書"),
    ("今日中に申込む。", "okurigana", "申込む", "申し込む"),
    ("市が取扱う情報を管理する。", "okurigana", "取扱う", "取り扱う"),
    # 全角英数字
    ("２０２４年４月に開始する。", "width", "２０２４", "2024"),
    ("ＮＰＯ法人と協定を結ぶ。", "width", "ＮＰＯ", "NPO"),
    ("費用は１，０００円である。", "width", "１，０００", "1,000"),
    # 句読点
    ("申請書，届出書を提出する。", "punctuation", "，", "、"),
    ("期限内に提出すること．", "punctuation", "．", "。"),
    ("住民,事業者及び関係団体が参加する。", "punctuation", ",", "、"),
    # 外来語
    ("政策のエビデンスを示す。", "loanword", "エビデンス", "根拠"),
    ("ステークホルダーとの調整を行う。", "loanword", "ステークホルダー", "利害関係者"),
]

# (text, family that must not fire): the traps of each family.
NEGATIVES = [
    ("住民及び事業者に周知する。", "conjunction"),
    ("申請者又はその代理人が来庁すること。", "conjunction"),
    ("規定に従って処理する。", "conjunction"),
    ("しかし、課題も残っている。", "conjunction"),
    ("また、説明会を開催する。", "conjunction"),
    ("影響は全国におよぶ。", "conjunction"),
    ("さらに、来年度は対象を広げる。", "adverb"),
    ("もっとも、例外もある。", "adverb"),
    ("市民にたいして説明する。", "adverb"),
    ("活動をはじめて三年になる。", "adverb"),
    ("やはり計画どおりに進める。", "adverb"),
    ("かなり時間を要する。", "adverb"),
    ("特に問題はない。", "adverb"),
    ("我が国の現状を分析する。", "adnominal"),
    ("ある日、相談があった。", "adnominal"),
    ("これを改める。", "pronoun"),
    ("開始時に出席を確認する。", "formal-noun"),
    ("時を同じくして発表した。", "formal-noun"),
    ("事務の効率化を図る。", "formal-noun"),
    ("年中行事の一覧を作成した。", "formal-noun"),
    ("市役所に届け出る。", "formal-noun"),
    ("研究所と連携する。", "formal-noun"),
    ("駅に近い所に駐輪場を設置する。", "formal-noun"),
    ("駅前の通りを通行止めにする。", "formal-noun"),
    ("大通りを通行止めにする。", "formal-noun"),
    ("業務を行う他の職員と協力する。", "formal-noun"),
    ("その他の事項は別に定める。", "formal-noun"),
    ("共に働く職員を募集する。", "formal-noun"),
    ("市民と共に歩むまちづくりを進める。", "formal-noun"),
    ("壊れた物を処分する。", "formal-noun"),
    ("為替の変動に注意する。", "formal-noun"),
    ("故人の遺志を尊重する。", "formal-noun"),
    ("次のとおり定める。", "formal-noun"),
    ("本を下さい。", "subsidiary"),
    ("来賓から記念品を頂いた。", "subsidiary"),
    ("市長が会場へ行く。", "subsidiary"),
    ("職員が現地を見る。", "subsidiary"),
    ("窓口に案内板を置く。", "subsidiary"),
    ("評価が良い事業を継続する。", "subsidiary"),
    ("書類を提出してください。", "subsidiary"),
    ("様式第1号により申請する。", "auxiliary"),
    ("鈴木様あての通知を送付した。", "auxiliary"),
    ("程度の差はある。", "auxiliary"),
    ("服に泥が付いている。", "auxiliary"),
    ("期限が過ぎた書類は受理しない。", "auxiliary"),
    ("審議会は委員10名から成る。", "kana-verb"),
    ("不徳の致すところである。", "kana-verb"),
    ("出来事を記録する。", "kana-verb"),
    ("在り方を検討する。", "kana-verb"),
    ("有無を確認する。", "kana-verb"),
    ("取扱いに注意する。", "okurigana"),
    ("申込書を窓口に提出する。", "okurigana"),
    ("取扱説明書を読む。", "okurigana"),
    ("受付窓口は1階にある。", "okurigana"),
    ("受付で相談する。", "okurigana"),
    ("見積書を提出する。", "okurigana"),
    ("手続が完了した。", "okurigana"),
    ("問合せ先は次のとおりである。", "okurigana"),
    ("申請を受け付け、審査する。", "okurigana"),
    ("書類を取り扱い、保管する。", "okurigana"),
    ("申請を受け付ける。", "okurigana"),
    ("2024年4月1日に開始する。", "width"),
    ("手数料は1,000円である。", "punctuation"),
    ("補助率は2.5%である。", "punctuation"),
    ("No.1の案を採用する。", "punctuation"),
    ("詳しくはwww.city.example.jpを参照すること。", "punctuation"),
    ("ボランティアを募集する。", "loanword"),
    ("ガイドラインを策定する。", "loanword"),
]


@pytest.mark.parametrize(("text", "family", "flagged", "suggestion"), POSITIVES,
                         ids=[f"{p[1]}:{p[2]}" for p in POSITIVES])
def test_flags_the_violation_with_the_official_form(text, family, flagged, suggestion):
    assert (flagged, suggestion) in found(text, family)


@pytest.mark.parametrize(("text", "family"), NEGATIVES, ids=[f"{n[1]}:{n[0][:8]}" for n in NEGATIVES])
def test_correct_official_usage_is_not_flagged(text, family):
    assert found(text, family) == []


def test_each_finding_names_its_guideline_and_section():
    findings = {f.rule: f for f in proofread("申請する時は、住民および事業者の手続きを行い、書類を提出して下さい。")}
    assert str(findings["formal-noun:時"].source) == "「公用文における漢字使用等について（平成22年内閣訓令第1号）」1(2)キ"
    assert str(findings["conjunction:および"].source).endswith("1(2)オ")
    assert str(findings["okurigana:手続き"].source).endswith("2(1)")
    assert findings["subsidiary:下さる"].family_label == "補助動詞・補助形容詞 / subsidiary verb or adjective"
    assert findings["formal-noun:時"].message.startswith("「時」は「とき」と書きます")


def test_compound_nouns_of_tsusoku7_take_no_okurigana():
    (finding,) = [f for f in proofread("見積もり書を出す。") if f.family == "okurigana"]
    assert (finding.suggestion, str(finding.source)) == ("見積", "「公用文における漢字使用等について（平成22年内閣訓令第1号）」2(1)")
    (fixed,) = [f for f in proofread("施設の受け付けは9時からである。") if f.family == "okurigana"]
    assert fixed.suggestion == "受付" and "通則7" in str(fixed.source)


def test_style_mix_flags_the_minority_ending_with_a_fix():
    text = "申請を受け付けます。受付時間は平日の午前9時から午後5時までです。土曜日は休みである。"
    (finding,) = found(text, "style")
    assert finding == ("である", "です")
    plain = "市は、計画を策定する。計画は5年ごとに見直す。進捗は毎年公表します。"
    assert found(plain, "style") == [("します", "する")]  # 公表|します -> 公表|する


@pytest.mark.parametrize("text", [
    "窓口は平日に開いています。土曜日は休みです。",
    "本要綱は、補助金の交付に関し必要な事項を定める。補助対象は市内の事業者とする。",
    "申請書を提出してください。受付は先着順です。",  # ください carries no style
    "以下のとおりお知らせします。「補助金は予算の範囲内で交付する。」と要綱に定めています。",  # a quotation
    "受付時間は平日です（年末年始を除く）。窓口は1階にあります。",  # a note in brackets after the predicate
    "手続は次のとおりです。\n・申請書を提出する。\n・手数料を納める。",  # a list may keep its own style
])
def test_one_style_throughout_is_not_a_mix(text):
    assert found(text, "style") == []


def test_long_sentence_counts_characters_not_spaces_and_respects_quotes():
    long = ("補助金の交付を受けようとする者は、交付申請書に事業計画書、収支予算書その他市長が必要と認める"
            "書類を添えて、事業の開始日の30日前までに市長に提出しなければならない。")
    assert len(long) == 82
    assert [f.family for f in proofread(long) if f.family == "long-sentence"] == ["long-sentence"]
    short = "補助金の交付を受けようとする者は、交付申請書を市長に提出しなければならない。"
    assert found(short, "long-sentence") == []
    # 。 inside a quotation does not end the sentence; a line break does.
    quoted = "「申請は窓口で受け付ける。郵送でもよい。」と" + "定める" * 20 + "。"
    assert len(found(quoted, "long-sentence")) == 1
    assert found(long[:41] + "\n" + long[41:], "long-sentence") == []
