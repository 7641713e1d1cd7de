"""Rebuild the sample corpus in samples/city/: the public notices of the fictional みなと市.

Run from the repository root:  python samples/build_city.py [--font PATH_TO_JAPANESE_TTF]

The texts live here, in one place, so facts (fees, counters, hours, 令和 dates) stay consistent
across formats. Each notice is written in the format and encoding a real city office would use:
Markdown and HTML in UTF-8, plain text in Shift_JIS (CP932) and EUC-JP, a PDF made with fpdf2
and an embedded (subset) Japanese font, and a Word document. Requires fpdf2 and python-docx;
the PDF needs a Japanese TrueType font (Debian: apt-get install fonts-ipafont-gothic).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "city"
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
)
# Fixed so that rebuilding produces the same files.
BUILD_DATE = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.timezone.utc)

JUMINHYO_MD = """\
# 住民票の写しの交付

みなと市では、住民票の写しを市民課の窓口、各支所、コンビニエンスストアで交付しています。
（令和8年4月1日更新）

## 手数料

- 窓口（市民課・支所）：1通300円
- コンビニ交付：1通200円（マイナンバーカードが必要です）
- 郵送請求：1通300円（手数料分の定額小為替を同封してください）

手数料は現金でお支払いください。窓口ではキャッシュレス決済（交通系ICカード・QRコード決済）も使えます。

## 請求できる人

住民票の写しを請求できるのは、本人または同じ世帯の人です。代理人が請求する場合は、本人が書いた委任状が必要です。
マイナンバー（個人番号）が記載された住民票の写しは、本人または同一世帯の人にのみ交付します。代理人が請求した場合は、本人の住所へ郵送します。

## 窓口に持ってくるもの

- 本人確認書類（マイナンバーカード、運転免許証、パスポートなど顔写真付きのもの1点）
- 顔写真付きの書類がない場合は、健康保険の資格確認書と年金手帳など2点
- 代理人の場合は委任状と代理人の本人確認書類

## 受付場所と時間

### 市役所本庁舎

市民課（本庁舎1階 2番窓口）で受け付けます。受付時間は平日の午前8時30分から午後5時15分までです。
第2・第4土曜日は午前9時から正午まで開庁します（住民票の写しと印鑑登録証明書の交付のみ）。

### 支所

北部支所・南部支所では、平日の午前8時30分から午後5時15分まで交付しています。土曜日は開いていません。

### コンビニ交付

全国のコンビニエンスストアのマルチコピー機で、毎日午前6時30分から午後11時まで取得できます（12月29日から1月3日を除く）。

## お問い合わせ

みなと市役所 市民課 住民記録係　電話 0123-45-6701（直通）
"""

SODAI_GOMI_TXT = """\
粗大ごみの出し方

みなと市環境政策課　令和8年4月1日

■粗大ごみとは
家庭から出るごみのうち、一辺の長さが30センチメートルを超えるもの（家具、寝具、自転車など）を粗大ごみといいます。
粗大ごみは、ごみ集積所には出せません。必ず事前に申し込んでください。

■申し込み方法
粗大ごみ受付センターに電話またはインターネットで申し込んでください。
　電話：0120-530-153（月曜日から金曜日の午前8時30分から午後5時まで。祝日も受け付けます）
　インターネット：みなと市ホームページの「粗大ごみ受付」から24時間受け付けています。
申し込みの際に、品目・大きさ・個数をお伝えください。収集日と手数料をご案内します。
収集は申し込みからおおむね1週間後です。3月と4月は引っ越しが多く、2週間以上かかることがあります。

■手数料
手数料は品目ごとに1点400円または1,000円です。
　400円：自転車、いす、カーペット、布団、電子レンジ、扇風機など
　1,000円：ソファー、ベッド（マットレスを含む）、たんす、食器棚、机など
手数料は「みなと市粗大ごみ処理券」（シール）で納めます。処理券は市内のコンビニエンスストア、スーパーマーケット、市役所本庁舎1階の売店で販売しています。

■出し方
収集日の朝、午前8時30分までに、処理券に受付番号を書いて品物の見やすいところに貼り、自宅前など指定された場所に出してください。
収集に立ち会う必要はありません。

■粗大ごみとして出せないもの
エアコン、テレビ、冷蔵庫・冷凍庫、洗濯機・衣類乾燥機の家電4品目は、家電リサイクル法により市では収集しません。購入した店か、買い替えをする店に引き取りを依頼してください。
パソコンはメーカーによる回収の対象です。
タイヤ、バッテリー、消火器、ピアノなど処理が難しいものも収集できません。販売店または専門の処理業者にご相談ください。

■自分で持ち込む場合
みなと市クリーンセンター（みなと市港南三丁目8番1号）に直接持ち込むこともできます。
受付は月曜日から土曜日の午前9時から午後4時まで。10キログラムごとに200円です。事前の予約が必要です。

問い合わせ：みなと市環境政策課　電話 0123-45-6730
"""

JIDO_TEATE_PAGES = (
    """\
児童手当のご案内

みなと市こども家庭課　令和8年4月1日

児童手当は、子どもを養育している人に支給される手当です。令和6年10月分から制度が変わり、所得制限がなくなりました。支給の対象も高校生年代まで広がりました。

■支給対象
みなと市に住民登録があり、高校生年代まで（18歳到達後の最初の3月31日まで）の子どもを養育している人に支給します。父母がともに子どもを養育している場合は、原則として所得の高い方が受給者になります。
公務員の人は、勤務先から支給されます。勤務先に申請してください。

■支給額（子ども1人あたりの月額）
3歳未満：15,000円
3歳から高校生年代まで：10,000円
第3子以降：30,000円（年齢にかかわらず）
第3子以降の数え方では、22歳到達後の最初の3月31日までの上の子も、親が経済的に負担している場合は人数に含めます。
""",
    """\
■支給日
児童手当は、年6回、偶数月（2月、4月、6月、8月、10月、12月）の10日に、前月までの2か月分を支給します。10日が土曜日、日曜日または祝日の場合は、その直前の平日に支給します。

■申請の方法
子どもが生まれたときや、みなと市に転入したときは、認定請求書を提出してください。
申請は、出生日または転出予定日の翌日から15日以内に行ってください。15日を過ぎると、過ぎた月の分は支給できません。

■必要なもの
・請求者名義の預金通帳またはキャッシュカード（振込先の確認のため）
・請求者と配偶者のマイナンバーが確認できるもの
・請求者の本人確認書類（マイナンバーカード、運転免許証など）
・子どもと別居している場合は、別居監護申立書

■受付窓口
みなと市役所 こども家庭課（本庁舎2階 5番窓口）
受付時間は平日の午前8時30分から午後5時15分までです。
マイナポータルからオンラインで申請することもできます。

■現況の届出
毎年6月の現況届は、原則として不要です。ただし、離婚協議中の人などには届出をお願いすることがあります。

問い合わせ：みなと市こども家庭課 手当係　電話 0123-45-6750
""",
)

INKAN_HTML = """\
<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>印鑑登録 | みなと市</title>
<style>body { font-family: sans-serif; }</style>
<script>console.log("analytics");</script>
</head>
<body>
<nav><a href="/">トップ</a> &gt; <a href="/kurashi/">くらし・手続き</a></nav>
<main>
<h1>印鑑登録</h1>
<p>印鑑登録をすると、不動産の登記や自動車の登録、公正証書の作成などに必要な印鑑登録証明書を取得できます。（令和8年4月1日更新）</p>

<h2>登録できる人</h2>
<p>みなと市に住民登録がある15歳以上の人が登録できます。登録できる印鑑は1人1個です。</p>

<h2>登録できる印鑑</h2>
<ul>
<li>一辺の長さが8ミリメートルの正方形に収まらず、25ミリメートルの正方形に収まるもの</li>
<li>住民票に記載されている氏名、氏、名、または氏名の一部を組み合わせたもの</li>
<li>ゴム印など変形しやすいもの、欠けているもの、外枠のないものは登録できません</li>
</ul>

<h2>登録の手続き</h2>
<h3>本人が来庁する場合</h3>
<p>登録する印鑑と、顔写真付きの本人確認書類（マイナンバーカード、運転免許証、パスポートなど）を持って、市民課（本庁舎1階 3番窓口）にお越しください。その日のうちに登録し、印鑑登録証（カード）をお渡しします。</p>
<p>顔写真付きの本人確認書類がない場合は、市から本人の住所へ照会書を郵送します。照会書に記入し、印鑑と一緒に窓口へお持ちください。</p>
<h3>代理人が手続きする場合</h3>
<p>本人が書いた代理人選任届が必要です。市から本人の住所へ照会書を郵送し、回答書を代理人が窓口に持参した時点で登録します。</p>

<h2>手数料</h2>
<table>
<tr><th>手続き</th><th>手数料</th></tr>
<tr><td>印鑑登録</td><td>無料</td></tr>
<tr><td>印鑑登録証の再交付</td><td>300円</td></tr>
<tr><td>印鑑登録証明書（窓口）</td><td>1通300円</td></tr>
<tr><td>印鑑登録証明書（コンビニ交付）</td><td>1通200円</td></tr>
</table>
<p>印鑑登録証明書を取るときは、印鑑登録証（カード）が必要です。印鑑そのものは必要ありません。</p>

<h2>受付時間</h2>
<p>平日の午前8時30分から午後5時15分まで。第2・第4土曜日の午前9時から正午までは、印鑑登録証明書の交付のみ行います（新規の登録はできません）。</p>
</main>
<footer>みなと市役所 市民課 証明係　電話 0123-45-6702</footer>
</body>
</html>
"""

TENNYU_DOCX = (
    ("Title", "転入届・転出届"),
    (None, "みなと市市民課　令和8年4月1日"),
    (None, "引っ越しをしたときは、住民登録の手続きが必要です。届出の手数料は無料です。"),
    ("Heading 1", "転出届（みなと市から市外へ引っ越すとき）"),
    (None, "引っ越す日のおおむね14日前から、引っ越した日から14日以内までに届け出てください。"),
    (None, "届出をすると転出証明書を交付します。転出証明書は、新しい住所の市区町村に転入届を出すときに必要です。"),
    ("Heading 2", "転出届の特例（マイナンバーカードをお持ちの人）"),
    (None, "マイナンバーカードを持っている人は、マイナポータルからオンラインで転出届を出せます。この場合、転出証明書は交付されません。転入先の窓口にはマイナンバーカードを持って行ってください。"),
    ("Heading 1", "転入届（市外からみなと市へ引っ越してきたとき）"),
    (None, "引っ越した日から14日以内に届け出てください。引っ越す前に転入届を出すことはできません。"),
    ("Heading 2", "転入届に必要なもの"),
    ("List Bullet", "前の住所地で交付された転出証明書（転出届の特例を使った人はマイナンバーカード）"),
    ("List Bullet", "届出をする人の本人確認書類（マイナンバーカード、運転免許証など）"),
    ("List Bullet", "転入する全員分のマイナンバーカード（持っている人のみ。住所の変更を記録します）"),
    ("List Bullet", "外国籍の人は、在留カードまたは特別永住者証明書"),
    ("Heading 1", "受付窓口と時間"),
    ("table", (("窓口", "場所", "受付時間"),
               ("市民課 住民記録係", "本庁舎1階 1番窓口", "平日 午前8時30分～午後5時15分"),
               ("北部支所・南部支所", "各支所 市民窓口", "平日 午前8時30分～午後5時15分"))),
    (None, "3月下旬から4月上旬は大変混み合います。待ち時間は2時間を超えることがあります。"),
    (None, "問い合わせ：みなと市役所 市民課 住民記録係　電話 0123-45-6701"),
)

TOSHOKAN_TXT = """\
みなと市立中央図書館　利用案内

令和8年4月1日現在

【開館時間】
火曜日から金曜日：午前9時から午後8時まで
土曜日・日曜日・祝日：午前9時から午後5時まで

【休館日】
毎週月曜日（祝日の場合は翌日）、年末年始（12月29日から1月3日）、特別整理期間（毎年2月に10日間程度）

【利用カードの作り方】
みなと市に住んでいる人、通勤・通学している人は、だれでも利用カードを作れます。
住所が確認できるもの（運転免許証、マイナンバーカード、学生証など）を持って、1階カウンターで申し込んでください。カードの発行は無料です。

【貸出】
本・雑誌は1人10冊まで、CD・DVDは1人3点までです。
貸出期間は2週間です。ほかに予約している人がいなければ、1回だけ延長できます。
インターネットで予約した本は、市内の地区図書館（北部図書館・南部図書館）でも受け取れます。

【返却】
開館時間外は、正面入口の返却ポストに返してください。CD・DVDは破損のおそれがあるため、返却ポストには入れず、カウンターに返してください。

【所在地】
みなと市中央二丁目5番3号（市役所本庁舎から徒歩5分）
電話 0123-45-6800
"""

FOREIGN_RESIDENTS_MD = """\
# Guide for Foreign Residents of Minato City

Minato City Hall, Citizen Services Division. Updated 1 April 2026 (Reiwa 8).

## Moving in

When you move to Minato City, submit a moving-in notification within 14 days of the day you move.
Go to the Citizen Services Division, Window 1 on the 1st floor of the City Hall main building.
Bring your residence card (or special permanent resident certificate) and your passport. If you moved
from another city in Japan, also bring the moving-out certificate issued by your previous city.
There is no fee for the notification.

## Certificates

A certificate of residence (jūminhyō no utsushi) costs 300 yen per copy at the counter and 200 yen per
copy at a convenience store with your My Number Card. A seal registration certificate also costs
300 yen per copy at the counter.

## Opening hours

The City Hall is open on weekdays from 8:30 a.m. to 5:15 p.m. On the 2nd and 4th Saturday of each
month, the Citizen Services Division is open from 9:00 a.m. to noon for certificates only.

## Interpreters

Free interpretation in English, Chinese, Korean, Vietnamese and Portuguese is available at the
Multicultural Information Desk (1st floor, next to Window 1) on weekdays from 9:00 a.m. to 4:00 p.m.
A video interpretation tablet is available at every window during opening hours.

## Bulky waste

Furniture and other items longer than 30 cm on one side are bulky waste. Book a collection with the
Bulky Waste Reception Center (phone 0120-530-153, weekdays 8:30 a.m. to 5:00 p.m., or online at any
time). The fee is 400 yen or 1,000 yen per item, paid with a bulky waste sticker sold at convenience
stores. Air conditioners, TVs, refrigerators and washing machines are not collected by the city.

## Contact

Minato City Hall, Citizen Services Division: 0123-45-6701 (weekdays).
"""


def _find_font(explicit: str | None) -> Path:
    for candidate in ((explicit,) if explicit else FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("no Japanese TrueType font found: pass --font (Debian: apt-get install fonts-ipafont-gothic)")


def build_pdf(path: Path, font: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(BUILD_DATE)
    pdf.set_title("児童手当のご案内")
    pdf.set_author("みなと市こども家庭課")
    pdf.add_font("ja", fname=str(font))
    pdf.set_margins(20, 20, 20)
    for page in JIDO_TEATE_PAGES:
        pdf.add_page()
        lines = page.splitlines()
        pdf.set_font("ja", size=16)
        pdf.multi_cell(0, 10, lines[0], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("ja", size=10.5)
        for line in lines[1:]:
            pdf.multi_cell(0, 7, line or " ", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def build_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = "転入届・転出届"
    props.author = "みなと市市民課"
    props.created = props.modified = BUILD_DATE.replace(tzinfo=None)
    props.revision = 1
    for style, content in TENNYU_DOCX:
        if style == "table":
            table = document.add_table(rows=len(content), cols=len(content[0]))
            for row, values in zip(table.rows, content):
                for cell, value in zip(row.cells, values):
                    cell.text = value
        else:
            document.add_paragraph(content, style=style)
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_fixed_zip_times(buffer.getvalue()))


def _fixed_zip_times(data: bytes) -> bytes:
    """The same DOCX with every member stamped BUILD_DATE (python-docx stamps the current time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=BUILD_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", help="a Japanese TrueType font for the PDF")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    (OUT / "juminhyo.md").write_bytes(JUMINHYO_MD.encode("utf-8"))
    (OUT / "sodai-gomi.txt").write_bytes(SODAI_GOMI_TXT.replace("\n", "\r\n").encode("cp932"))
    (OUT / "inkan-toroku.html").write_bytes(INKAN_HTML.encode("utf-8"))
    (OUT / "toshokan.txt").write_bytes(TOSHOKAN_TXT.encode("euc_jp"))
    (OUT / "foreign-residents.md").write_bytes(FOREIGN_RESIDENTS_MD.encode("utf-8"))
    build_pdf(OUT / "jido-teate.pdf", _find_font(args.font))
    build_docx(OUT / "tennyu-tenshutsu.docx")
    for file in sorted(OUT.iterdir()):
        print(f"{file.stat().st_size:>7,} bytes  {file.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
