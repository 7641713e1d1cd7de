"""Task apps: small TOML files (a form, a prompt, a retrieval scope, the models allowed, an output
format, a purpose the policy governs) run through the governed request path, audited with the
app's id and version. Shipped: 文書作成, 要約, 公用文校正, 翻訳, 議事録作成, FAQ作成; an organisation
adds its own by dropping a file in `apps.folder` (or uploading it in the UI).

    catalog = Catalog.from_settings(settings)
    spec = catalog.get("summarise")
    prepared = prepare(spec, {}, {"file": Upload("report.pdf", data)})
    async for kind, value in run(path, spec, prepared, principal=p, backend=..., kb=kb, settings=settings): ...
"""

from sekisho.apps.catalog import Catalog
from sekisho.apps.run import RULES, AppNeedsModel, Part, Prepared, Upload, choose_backend, prepare, run
from sekisho.apps.spec import AppError, AppInput, AppNotFound, AppSpec, load_app, parse_app

__all__ = ["RULES", "AppError", "AppInput", "AppNeedsModel", "AppNotFound", "AppSpec", "Catalog", "Part", "Prepared",
           "Upload", "choose_backend", "load_app", "parse_app", "prepare", "run"]
