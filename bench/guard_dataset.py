"""A labelled Japanese test set for the PII guard, generated deterministically from a seed.

Documents are assembled from realistic templates (申請書, 問い合わせメール, 議事録, 契約書) whose
slots hold either a real-shaped value of an entity (labelled: valid check digits are computed,
dates exist) or a look-alike that must NOT be reported (unlabelled: invalid check digits, order
and tracking numbers, amounts, ISBNs, dates that are not birth dates, 秘書/秘密...).

    python bench/guard_dataset.py --docs 5 --seed 7      # print a few documents with their labels

The check digits are computed here independently of sekisho (see `my_number`, `corporate_number`,
`luhn_complete`), so the benchmark does not grade sekisho against itself.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

ENTITIES = (
    "MY_NUMBER", "CORPORATE_NUMBER", "PHONE_NUMBER", "POSTAL_CODE", "ADDRESS", "EMAIL_ADDRESS",
    "CREDIT_CARD", "BANK_ACCOUNT", "PASSPORT", "DRIVERS_LICENSE", "DATE_OF_BIRTH", "CONFIDENTIAL",
)

FULL = str.maketrans("0123456789-", "０１２３４５６７８９－")


@dataclass
class Doc:
    kind: str
    parts: list[str] = field(default_factory=list)
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    length: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def value(self, entity: str, text: str) -> None:
        self.spans.append((entity, self.length, self.length + len(text)))
        self.add(text)

    def to_json(self) -> dict:
        return {"kind": self.kind, "text": "".join(self.parts),
                "spans": [{"entity": e, "start": s, "end": t} for e, s, t in self.spans]}


# --- values ---------------------------------------------------------------------------------

def my_number(rng: random.Random, valid: bool = True) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(11))
    # 番号法施行令: Pn from the right, Qn = n+1 (n<=6) / n-5 (n>=7); 11 - sum mod 11, 0 if <= 1
    total = sum(int(d) * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(reversed(body), 1))
    check = 0 if total % 11 <= 1 else 11 - total % 11
    if not valid:
        check = (check + rng.randrange(1, 10)) % 10
    return body + str(check)


def corporate_number(rng: random.Random) -> str:
    base = "".join(str(rng.randrange(10)) for _ in range(12))
    total = sum(int(d) * (2 if n % 2 == 0 else 1) for n, d in enumerate(reversed(base), 1))
    return str(9 - total % 9) + base


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(body)):
        v = int(d) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return body + str((10 - total % 10) % 10)


def group(s: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i:i + n])
        i += n
    return sep.join(out)


def maybe_full(rng: random.Random, s: str, p: float = 0.2) -> str:
    return s.translate(FULL) if rng.random() < p else s


def phone(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        # the digit after 070/080/090 is never 0 (0800 is toll-free)
        s = group("0" + rng.choice("789") + "0" + str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(7)), (3, 4, 4),
                  rng.choice(["-", "-", " ", "ー"]))
    elif kind < 0.6:
        area = rng.choice(["03", "06", "045", "052", "011", "092", "075", "0123", "0138", "01267"])
        local_len = 6 - len(area)
        # a local exchange number never starts with 0 or 1
        s = area + "-" + str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(local_len - 1)) + "-" + \
            "".join(str(rng.randrange(10)) for _ in range(4))
        s = s.replace("-", rng.choice(["-", "-", "−"]))
    elif kind < 0.7:
        s = "0120-" + "".join(str(rng.randrange(10)) for _ in range(3)) + "-" + \
            "".join(str(rng.randrange(10)) for _ in range(3))
    elif kind < 0.8:
        s = "050-" + "".join(str(rng.randrange(10)) for _ in range(4)) + "-" + \
            "".join(str(rng.randrange(10)) for _ in range(4))
    elif kind < 0.9:
        s = "+81-" + rng.choice(["3", "6", "90", "80"]) + "-" + str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(3)) + \
            "-" + "".join(str(rng.randrange(10)) for _ in range(4))
    else:
        s = "03(" + str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(3)) + ")" + \
            "".join(str(rng.randrange(10)) for _ in range(4))
    return maybe_full(rng, s)


PLACES = [
    ("東京都", "千代田区", "霞が関"), ("東京都", "新宿区", "西新宿"), ("東京都", "港区", "虎ノ門"),
    ("大阪府", "大阪市北区", "梅田"), ("神奈川県", "横浜市中区", "山下町"), ("愛知県", "名古屋市中区", "栄"),
    ("北海道", "札幌市中央区", "北1条西"), ("福岡県", "福岡市博多区", "博多駅前"), ("京都府", "京都市左京区", "吉田本町"),
    ("埼玉県", "さいたま市浦和区", "高砂"), ("宮城県", "仙台市青葉区", "国分町"), ("広島県", "広島市中区", "基町"),
    ("鹿児島県", "鹿児島市", "山下町"), ("長野県", "松本市", "丸の内"), ("静岡県", "浜松市中央区", "元城町"),
]
KANJI_NUM = "〇一二三四五六七八九"


def kanji(n: int) -> str:
    if n < 10:
        return KANJI_NUM[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else KANJI_NUM[tens]) + "十" + (KANJI_NUM[ones] if ones else "")


def address(rng: random.Random) -> str:
    pref, city, town = rng.choice(PLACES)
    a, b, c = rng.randrange(1, 9), rng.randrange(1, 30), rng.randrange(1, 20)
    block = rng.choice([f"{a}-{b}-{c}", f"{a}丁目{b}番{c}号", f"{kanji(a)}丁目{kanji(b)}番{kanji(c)}号",
                        f"{a}丁目{b}-{c}", f"{b}番地"])
    return pref + city + town + maybe_full(rng, block, 0.15)


def postal(rng: random.Random) -> str:
    return maybe_full(rng, f"{rng.randrange(1, 1000):03d}-{rng.randrange(10000):04d}", 0.2)


SURNAMES = ["sato", "suzuki", "takahashi", "tanaka", "watanabe", "ito", "yamamoto", "nakamura", "kobayashi", "kato"]
DOMAINS = ["example.co.jp", "city.example.lg.jp", "mail.example.ne.jp", "example.com", "bank.example.jp"]


def email(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)}{rng.choice(['.', '_', ''])}{rng.choice('hkmty')}{rng.randrange(100)}@{rng.choice(DOMAINS)}"


def card(rng: random.Random) -> str:
    scheme = rng.choice(["visa", "mc", "jcb", "amex"])
    if scheme == "amex":
        n = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        return group(n, (4, 6, 5), rng.choice([" ", "-"]))
    prefix = {"visa": "4", "mc": str(rng.randrange(51, 56)), "jcb": str(rng.randrange(3528, 3590))}[scheme]
    n = luhn_complete(prefix, 16, rng)
    return rng.choice([n, group(n, (4, 4, 4, 4), " "), group(n, (4, 4, 4, 4), "-")])


ERAS = [("昭和", 1926, 1, 63), ("平成", 1989, 2, 30)]  # (name, first year, first full year, last full year)


def birth_date(rng: random.Random) -> str:
    year, month, day = rng.randrange(1940, 2010), rng.randrange(1, 13), rng.randrange(1, 29)
    form = rng.random()
    if form < 0.35:
        return f"{year}年{month}月{day}日"
    if form < 0.5:
        return f"{year}/{month:02d}/{day:02d}"
    era = "昭和" if year < 1989 else "平成"
    ey = year - (1925 if era == "昭和" else 1988)
    if era == "平成" and ey == 1 and month == 1:
        month = 2
    if form < 0.65:
        return f"{era}{kanji(ey)}年{kanji(month)}月{kanji(day)}日"
    return f"{era}{'元' if ey == 1 else ey}年{month}月{day}日"


BANKS = ["みずほ銀行", "三菱UFJ銀行", "三井住友銀行", "りそな銀行", "横浜銀行", "城南信用金庫"]
BRANCHES = ["本店営業部", "新宿支店", "梅田支店", "横浜駅前支店", "札幌支店"]
MARKINGS = ["【社外秘】", "社外秘", "【秘】", "〔秘〕", "部外秘", "極秘", "取扱注意", "機密性２", "機密性3", "CONFIDENTIAL"]
NAMES = ["山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 健", "渡辺 直子"]


def digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(n - 1))


# --- look-alikes (never labelled) -----------------------------------------------------------

def lookalike(rng: random.Random) -> str:
    choice = rng.randrange(14)
    if choice == 0:
        return f"ご注文番号 {my_number(rng)} の商品を発送しました。"
    if choice == 1:
        return f"マイナンバー欄の {my_number(rng, valid=False)} は誤記のため再提出をお願いします。"
    if choice == 2:
        return f"契約金額は ¥{rng.randrange(1, 999):,}{rng.randrange(1000):03d},{rng.randrange(1000):03d},{rng.randrange(1000):03d} です。"
    if choice == 3:
        return f"年間売上高は {digits(rng, 12)}円 となりました。"
    if choice == 4:
        return f"ISBN978-4-{rng.randrange(10, 99)}-{rng.randrange(100000, 999999)}-{rng.randrange(10)} の書籍を参照。"
    if choice == 5:
        return f"お問い合わせ伝票番号 {group(my_number(rng), (4, 4, 4), '-')} で配送状況を確認できます。"
    if choice == 6:
        return f"会議は{rng.randrange(2020, 2026)}年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日に開催予定です。"
    if choice == 7:
        return rng.choice(["社長秘書の", "秘密保持契約を締結した", "便秘薬の", "神秘的な"]) + "件について共有します。"
    if choice == 8:
        return f"部品番号 {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)} を交換しました。"
    if choice == 9:
        return f"請求書番号 INV-{rng.randrange(2020, 2026)}-{rng.randrange(100000, 999999)} をご確認ください。"
    if choice == 10:
        return f"参加者は{rng.randrange(10, 300)}名、会員数は{digits(rng, 7)}人です。"
    if choice == 11:
        return f"管理番号 {digits(rng, 13)} の資産を廃棄します。"
    if choice == 12:
        valid = luhn_complete("4", 16, rng)
        broken = valid[:-1] + str((int(valid[-1]) + rng.randrange(1, 10)) % 10)  # fails Luhn
        return f"カード番号 {broken} は照合できませんでした。"
    return f"型番 {rng.choice('ABCDEFGH')}{rng.choice('KLMNPRT')}{digits(rng, 7)} の在庫は{rng.randrange(1, 50)}台です。"


# --- templates ------------------------------------------------------------------------------

def application(rng: random.Random, doc: Doc) -> None:
    """申請書"""
    if rng.random() < 0.3:
        doc.value("CONFIDENTIAL", rng.choice(MARKINGS))
        doc.add("\n")
    doc.add(f"{rng.choice(['住民票の写し等交付申請書', '児童手当認定請求書', '口座振替依頼書'])}\n")
    doc.add(f"氏名：{rng.choice(NAMES)}\n")
    if rng.random() < 0.7:
        doc.add(rng.choice(["生年月日：", "生年月日 ", "生年月日（西暦）："]))
        doc.value("DATE_OF_BIRTH", birth_date(rng))
        doc.add("\n")
    doc.add("住所：〒")
    doc.value("POSTAL_CODE", postal(rng))
    doc.add(" ")
    doc.value("ADDRESS", address(rng))
    doc.add("\n電話番号：")
    doc.value("PHONE_NUMBER", phone(rng))
    doc.add("\n")
    if rng.random() < 0.6:
        doc.add(rng.choice(["個人番号：", "マイナンバー ", "個人番号（12桁）："]))
        n = my_number(rng)
        doc.value("MY_NUMBER", maybe_full(rng, rng.choice([n, group(n, (4, 4, 4), "-"), group(n, (4, 4, 4), " ")])))
        doc.add("\n")
    if rng.random() < 0.4:
        doc.add(f"振込先：{rng.choice(BANKS)} {rng.choice(BRANCHES)} {rng.choice(['普通', '当座'])} 口座番号 ")
        doc.value("BANK_ACCOUNT", maybe_full(rng, digits(rng, 7), 0.15))
        doc.add("\n")
    if rng.random() < 0.3:
        prefix, suffix = rng.choice([("本人確認書類：運転免許証（番号 ", "）\n"), ("運転免許証番号：", "\n")])
        doc.add(prefix)
        doc.value("DRIVERS_LICENSE", f"{rng.randrange(10, 98)}{digits(rng, 10)}")
        doc.add(suffix)
    if rng.random() < 0.2:
        doc.add("旅券番号：")
        doc.value("PASSPORT", rng.choice(["TK", "TR", "MZ", "TZ"]) + digits(rng, 7))
        doc.add("\n")
    doc.add(f"申請日：令和{rng.randrange(2, 7)}年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日\n")


def inquiry_mail(rng: random.Random, doc: Doc) -> None:
    """問い合わせメール"""
    doc.add(f"件名：{rng.choice(['請求書の送付先について', '契約内容の確認', '登録情報の変更'])}\n\n")
    doc.add(f"{rng.choice(['ご担当者様', 'お客様センター御中'])}\n\nいつもお世話になっております。")
    if rng.random() < 0.5:
        doc.add(lookalike(rng))
    doc.add("登録情報の変更をお願いしたく、ご連絡いたしました。新しい連絡先は")
    doc.value("EMAIL_ADDRESS", email(rng))
    doc.add("、携帯電話は")
    doc.value("PHONE_NUMBER", phone(rng))
    doc.add("です。")
    if rng.random() < 0.3:
        doc.add("引き落としのクレジットカード番号は ")
        doc.value("CREDIT_CARD", card(rng))
        doc.add(" に変更してください。")
    if rng.random() < 0.3:
        doc.add("なお、私は")
        doc.value("DATE_OF_BIRTH", birth_date(rng))
        doc.add("生まれです。")
    doc.add(f"\n\nよろしくお願いいたします。\n{rng.choice(NAMES)}\n")


def minutes(rng: random.Random, doc: Doc) -> None:
    """議事録"""
    if rng.random() < 0.5:
        doc.value("CONFIDENTIAL", rng.choice(MARKINGS))
        doc.add("\n")
    doc.add(f"第{rng.randrange(1, 20)}回 {rng.choice(['経営会議', '情報システム委員会', '予算検討会'])} 議事録\n")
    doc.add(f"日時：{rng.randrange(2023, 2026)}年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日 14:00〜15:30\n")
    doc.add(f"出席者：{'、'.join(rng.sample(NAMES, 3))}\n")
    doc.add("1. 前回議事録の確認：承認された。\n")
    for _ in range(rng.randrange(1, 4)):
        doc.add(lookalike(rng) + "\n")
    if rng.random() < 0.4:
        doc.add("2. 取引先の登録：法人番号 ")
        doc.value("CORPORATE_NUMBER", corporate_number(rng))
        doc.add(" の登録を確認した。\n")
    if rng.random() < 0.4:
        doc.add("3. 移転先：")
        doc.value("ADDRESS", address(rng))
        doc.add(" に決定。代表電話は")
        doc.value("PHONE_NUMBER", phone(rng))
        doc.add("。\n")
    doc.add(f"次回は{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日に開催する。\n")


def contract(rng: random.Random, doc: Doc) -> None:
    """契約書"""
    doc.add(f"{rng.choice(['業務委託契約書', '秘密保持契約書', '賃貸借契約書'])}\n\n")
    doc.add("甲と乙は、以下のとおり契約を締結する。\n第1条（目的）本契約は、甲が乙に委託する業務の内容を定める。\n")
    if rng.random() < 0.5:
        doc.add(lookalike(rng) + "\n")
    doc.add("第2条（委託料）委託料は月額金")
    doc.add(f"{rng.randrange(10, 900)},000円（税別）とする。\n")
    if rng.random() < 0.5:
        doc.add("第3条（支払方法）甲は、乙の指定する口座（")
        doc.add(f"{rng.choice(BANKS)} {rng.choice(BRANCHES)} 普通預金 ")
        doc.value("BANK_ACCOUNT", digits(rng, 7))
        doc.add("）に振り込む。\n")
    doc.add("（甲）所在地：")
    doc.value("ADDRESS", address(rng))
    doc.add("\n")
    if rng.random() < 0.5:
        doc.add("登録番号：T")
        doc.value("CORPORATE_NUMBER", corporate_number(rng))
        doc.add("\n")
    doc.add("連絡先：")
    doc.value("EMAIL_ADDRESS", email(rng))
    doc.add("\n")


TEMPLATES = {"申請書": application, "問い合わせメール": inquiry_mail, "議事録": minutes, "契約書": contract}


def generate(n: int, seed: int = 0) -> list[dict]:
    """n documents, cycling through the templates; the same (n, seed) always gives the same set."""
    rng = random.Random(seed)
    kinds = list(TEMPLATES)
    docs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        doc = Doc(kind)
        TEMPLATES[kind](rng, doc)
        if rng.random() < 0.3:
            doc.add(lookalike(rng))
        docs.append(doc.to_json())
    return docs


HANDSET = Path(__file__).with_name("guard_handset.txt")
_MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


def handset(path: Path = HANDSET) -> list[dict]:
    """The hand-written sentences of guard_handset.txt, [[ENTITY:text]] markup turned into spans."""
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, spans, pos = [], [], 0
        for m in _MARK.finditer(line):
            text.append(line[pos:m.start()])
            start = sum(map(len, text))
            text.append(m.group(2))
            spans.append({"entity": m.group(1), "start": start, "end": start + len(m.group(2))})
            pos = m.end()
        text.append(line[pos:])
        docs.append({"kind": "handset", "text": "".join(text), "spans": spans})
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    docs = generate(args.docs, args.seed)
    for d in docs:
        print(f"--- {d['kind']}")
        print(d["text"])
        for s in d["spans"]:
            print(f"  {s['entity']:18s} {d['text'][s['start']:s['end']]}")
    counts: dict[str, int] = {}
    for d in docs:
        for s in d["spans"]:
            counts[s["entity"]] = counts.get(s["entity"], 0) + 1
    print(json.dumps({"docs": len(docs), "chars": sum(len(d["text"]) for d in docs), "entities": counts},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
