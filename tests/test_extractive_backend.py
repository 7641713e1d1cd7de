"""The extractive backend answers by quoting the supporting sentence, cited, or says it cannot."""

from __future__ import annotations

from sekisho.config import BackendConfig
from sekisho.models import ChatRequest, Message, Passage
from sekisho.models.extractive import NO_DOCUMENTS, AnswerType, ExtractiveBackend, answer_type, approx_tokens

PASSAGES = [
    Passage(1, "doc-a:0", "印鑑登録", "印鑑登録は市民課で受け付けます。登録できるのは15歳以上の人です。"
            "手数料は1通300円です。印鑑登録証明書は平成15年からコンビニでも取得できます。"),
    Passage(2, "doc-b:0", "粗大ごみの出し方", "粗大ごみは事前に申し込んでください。収集日の朝8時30分までに出してください。"
            "収集は申し込みからおおむね1週間後です。"),
]
BACKEND = ExtractiveBackend(BackendConfig(kind="extractive", local=True))


def ask(question: str, passages=PASSAGES) -> str:
    return BACKEND.complete(ChatRequest([Message("user", question)], passages=passages, question=question)).text


def test_quotes_the_sentence_that_answers_with_its_citation():
    assert ask("印鑑登録の手数料はいくらですか？") == "手数料は1通300円です。 [1]"


def test_date_question_prefers_the_sentence_with_a_date():
    answer = ask("印鑑登録証明書はいつからコンビニで取得できますか")
    assert "平成15年" in answer and answer.endswith("[1]")


def test_answer_comes_from_the_passage_that_holds_it_and_cites_that_passage():
    answer = ask("粗大ごみは何時までに出せばよいですか")
    assert "8時30分" in answer and answer.endswith("[2]")


def test_answer_type_from_the_interrogative():
    assert answer_type("梅雨は何月に始まりますか").kind == "date"
    assert answer_type("議員は何人いますか") == AnswerType("count", "人")
    assert answer_type("この法律を作ったのは誰か").kind == "person"
    assert answer_type("本社はどこにありますか").kind == "place"
    assert answer_type("梅雨とは何か").kind == "any"
    assert answer_type("図書館の開館時間は？").kind == "time"
    assert answer_type("What are the library's opening hours?").kind == "time"
    assert answer_type("日照時間の特徴とは").kind == "any"  # 時間 alone is not a question of hours
    assert answer_type("粗大ごみの申し込みの電話番号は？").kind == "phone"


def test_unrelated_passages_give_the_not_found_answer():
    assert ask("火星の大気の主成分は何ですか") == "資料に記載がありません"
    assert ask("印鑑登録の手数料はいくらですか", passages=[]) == "資料に記載がありません"


def test_english_passages_work_too():
    passages = [Passage(1, "t:0", "Tokyo", "Tokyo is the capital of Japan. The city hosted the Olympics in 1964 and 2021."),
                Passage(2, "c:0", "Cats", "Cats are small mammals. They sleep for most of the day.")]
    assert ask("When did Tokyo host the Olympics?", passages) == "The city hosted the Olympics in 1964 and 2021. [1]"
    assert ask("What is the melting point of tungsten?", passages) == "資料に記載がありません"


def test_a_sentence_that_leans_on_its_document_is_labelled_with_the_title():
    passages = [Passage(1, "m:0", "梅雨", "この時期は雨が多い。一年分の降水量が一週間で降ることもある。")]
    answer = ask("一年分の降水量が一週間で降ることもある季節は？", passages)
    assert answer.startswith("【梅雨】") and "一年分の降水量が一週間で降ることもある。" in answer


def test_plain_chat_without_documents_says_what_it_can_do():
    completion = BACKEND.complete(ChatRequest([Message("user", "こんにちは")]))
    assert completion.text == NO_DOCUMENTS and "資料" in completion.text


def test_stream_yields_pieces_that_join_to_the_completion():
    request = ChatRequest([Message("user", "q")], passages=PASSAGES, question="印鑑登録できるのは何歳以上ですか")
    pieces = list(BACKEND.stream(request))
    assert len(pieces) > 1
    assert "".join(pieces) == BACKEND.complete(request).text
    assert "15歳以上" in "".join(pieces)


def test_token_counts_follow_the_documented_approximation():
    assert approx_tokens("住民票") == 3  # one per CJK character
    assert approx_tokens("abcdefgh") == 2  # one per four other characters
    completion = BACKEND.complete(ChatRequest([Message("user", "住民票")], passages=PASSAGES, question="住民票"))
    assert completion.prompt_tokens == 3 and completion.completion_tokens == approx_tokens(completion.text)
    assert BACKEND.info().local is True and BACKEND.info().kind == "extractive"


def test_a_label_line_is_read_with_the_line_it_labels_and_headings_are_not_answers():
    passages = [Passage(1, "lib:0", "図書館", "# 図書館利用案内\n\n【休館日】\n毎週月曜日（祝日の場合は翌日）、年末年始\n\n"
                        "【開館時間】\n午前9時から午後7時まで\n")]
    answer = ask("図書館の休館日はいつですか", passages)
    assert answer == "【休館日】\n毎週月曜日（祝日の場合は翌日）、年末年始 [1]"


def test_a_list_line_chosen_beside_the_best_sentence_brings_its_whole_list():
    fees = Passage(1, "j:0", "住民票の写しの交付", "## 手数料\n\n- 窓口：1通300円\n- コンビニ交付：1通200円\n"
                   "- 郵送請求：1通300円\n\n手数料は現金で支払います。")
    answer = ask("手数料はいくらですか", [fees])
    for line in ("窓口：1通300円", "コンビニ交付：1通200円", "郵送請求：1通300円"):
        assert line in answer


def test_a_question_naming_only_the_topic_is_answered_by_the_kind_of_answer_it_asks_for():
    # Every term of 「児童手当はいくら…」 is in the title, so the introduction (which repeats 児童手当は)
    # and the amount table match it alike; only the amount table holds an amount.
    doc = Passage(1, "p:0", "児童手当のご案内", "児童手当は、子どもを養育している人に支給される手当です。\n\n"
                  "■支給額（月額）\n3歳未満：15,000円\n3歳から高校生年代まで：10,000円\n第3子以降：30,000円\n\n"
                  "■支給日\n2月：前月までの2か月分\n6月：前月までの2か月分\n")
    answer = ask("児童手当はいくらもらえますか", [doc])
    assert "■支給額（月額）\n3歳未満：15,000円" in answer and answer.endswith("30,000円 [1]")
    assert "支給日" not in answer  # a table run ends where the next labelled block begins


def test_hours_questions_quote_the_hours_not_the_sentence_repeating_the_words():
    doc = Passage(1, "l:0", "図書館", "【返却】\n開館時間外は、返却ポストに返してください。\n\n"
                  "【開館時間】\n平日：午前9時から午後8時まで\n土日：午前9時から午後5時まで\n")
    answer = ask("図書館の開館時間は？", [doc])
    assert "午前9時から午後8時まで\n土日：午前9時から午後5時まで" in answer and "返却" not in answer


def test_a_label_naming_what_is_asked_beats_a_sentence_repeating_the_question():
    # The introduction repeats 「支給される」 word for word; the ■支給日 block is the answer.
    doc = Passage(1, "p:0", "児童手当のご案内", "児童手当は、子どもを養育している人に支給される手当です。"
                  "令和6年10月分から制度が変わりました。\n\n■支給日\n児童手当は、偶数月の10日に支給します。\n")
    assert ask("児童手当はいつ支給されますか", [doc]) == "【児童手当のご案内】■支給日\n児童手当は、偶数月の10日に支給します。 [1]"


def test_the_answer_further_down_a_labelled_block_is_quoted_with_the_sentence_that_matched():
    doc = Passage(1, "g:0", "粗大ごみの出し方", "■自分で持ち込む場合\nクリーンセンターに直接持ち込むこともできます。\n"
                  "受付は午前9時から午後4時まで。10キログラムごとに200円です。\n\n■手数料\n1点400円です。\n")
    answer = ask("クリーンセンターに持ち込む場合の料金は？", [doc])
    assert answer.startswith("【粗大ごみの出し方】■自分で持ち込む場合") and answer.endswith("10キログラムごとに200円です。 [1]")


def test_a_phone_number_question_quotes_the_line_with_the_number():
    doc = Passage(1, "g:0", "粗大ごみの出し方", "■申し込み方法\n粗大ごみ受付センターに電話またはインターネットで申し込んでください。\n"
                  "電話：0120-530-153（平日の午前8時30分から午後5時まで）\n")
    assert "0120-530-153" in ask("粗大ごみの申し込みの電話番号は？", [doc])


def test_a_repeated_inflection_is_weaker_evidence_than_the_answer():
    # 「支給される」 in the introduction repeats the question's inflection (給さ, され, rare in the
    # document, so of high idf); the sentence with the age says 「支給します」.
    doc = Passage(1, "p:0", "児童手当のご案内", "児童手当は、子どもを養育している人に支給される手当です。所得制限はありません。\n\n"
                  "■支給対象\n高校生年代まで（18歳到達後の最初の3月31日まで）の子どもを養育している人に支給します。\n"
                  "公務員の人は、勤務先から支給されます。\n\n■支給日\n偶数月の10日に、前月までの2か月分を支給します。\n")
    assert "18歳到達後" in ask("児童手当は何歳まで支給されますか", [doc])


def test_html_and_docx_headings_are_not_quoted_as_answers():
    # By the time a passage reaches the answerer an <h2> is a plain line; the chunk's heading path
    # says which lines are headings.
    text = "登録の手続き\n本人が来庁する場合\n登録する印鑑と本人確認書類を持って、市民課にお越しください。"
    headings = ("印鑑登録", "登録の手続き", "本人が来庁する場合")
    answer = ask("印鑑登録の手続きの場合は", [Passage(1, "h:3", "印鑑登録", text, headings)])
    assert answer == "登録する印鑑と本人確認書類を持って、市民課にお越しください。 [1]"
    assert "登録の手続き" in ask("印鑑登録の手続きの場合は", [Passage(1, "h:3", "印鑑登録", text)])  # unmarked: a sentence


def test_english_inflections_meet_their_stem():
    # "move" and "moved" are one word: the sentence that merely says "move" must not outweigh the
    # one that says what to "bring".
    text = ("When you move to Minato City, submit a moving-in notification within 14 days of the day you move.\n"
            "Bring your residence card and your passport. If you moved from another city, also bring the "
            "moving-out certificate.\n")
    answer = ask("What should I bring when I move in?", [Passage(1, "e:0", "Moving in", text)])
    assert "Bring your residence card" in answer and "notification" not in answer and answer.endswith("[1]")


def test_a_procedure_named_as_the_occasion_does_not_pick_the_block_titled_with_it():
    # 「手続きには何を持っていけば」 asks what to bring; the block headed 代理人が手続きする場合 names
    # 手続き but says what a proxy needs.
    text = ("登録の手続き\n本人が来庁する場合\n登録する印鑑と本人確認書類を持って、市民課にお越しください。"
            "その日のうちに登録し、印鑑登録証をお渡しします。\n代理人が手続きする場合\n本人が書いた代理人選任届が"
            "必要です。回答書を代理人が窓口に持参した時点で登録します。\n")
    headings = ("印鑑登録", "登録の手続き", "本人が来庁する場合", "代理人が手続きする場合")
    answer = ask("印鑑登録の手続きには何を持っていけばいいですか", [Passage(1, "h:2", "印鑑登録", text, headings)])
    assert answer.startswith("登録する印鑑と本人確認書類を持って")
    flow = ("申請の流れ\n窓口で申請書を書き、番号札を取ってお待ちください。\n"
            "必要なもの\n本人確認書類を持ってきてください。\n")
    # Asked as the thing wanted, a procedure still picks the block that names it.
    assert "番号札" in ask("申請の手続きの流れは？", [Passage(1, "f:0", "申請", flow, ("申請の流れ", "必要なもの"))])
