"""Every message the cabinet can show, and the catalogs kept in step with them.

Messages come from four places: `_()` and `N_()` in the templates and the cabinet's Python code (Babel's
extractors find them), the titles of every refusal (a page shows `_(refusal.title)`), and the words for the
values the database allows in an enumerated column (a page shows a status, kind or role through the `label`
filter, as the value with its underscores as spaces), roles among them. The titles and the values are known once the modules
that define them are imported: every module of the layers below the cabinet is.

`update_catalogs` adds each new message to the Kazakh and Russian catalogs untranslated and drops messages
no page shows any more, keeping every translation made; `untranslated` lists what a catalog still lacks.
"""

import importlib
import pkgutil
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import write_po

from dfa import custody, issuance, ledger, platform, reconciliation, settlement
from dfa.cabinet.i18n import LANGUAGES, SOURCE_LANGUAGE, catalog_path, label_of, read_catalog
from dfa.platform.access import Role
from dfa.platform.database import Base
from dfa.platform.errors import DomainError

CABINET = Path(__file__).parent
_METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
_OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
_QUOTED = re.compile(r"'([^']*)'")


def _import_the_layers_below() -> None:
    for package in (platform, ledger, custody, settlement, issuance, reconciliation):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)


def messages() -> set[str]:
    """Every message the cabinet can show."""
    _import_the_layers_below()
    found = {found[2] for found in extract_from_dir(CABINET, _METHODS, _OPTIONS) if isinstance(found[2], str)}
    found |= {cls.title for cls in DomainError.registry.values()}
    found |= {label_of(role) for role in Role}
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            condition = str(getattr(constraint, "sqltext", ""))
            if " IN (" in condition:
                found |= {label_of(value) for value in _QUOTED.findall(condition)}
    return found - {""}


def untranslated(code: str) -> list[str]:
    """The messages the language's catalog has no translation for, sorted."""
    catalog = read_catalog(code)
    return sorted(m for m in messages() if not ((entry := catalog.get(m)) is not None and entry.string))


def update_catalogs() -> dict[str, int]:
    """Bring every catalog in step with the messages; returns how many each still lacks a translation for."""
    wanted = messages()
    lacking = {}
    for code in LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        catalog = read_catalog(code)
        for message in wanted - {entry.id for entry in catalog if entry.id}:
            catalog.add(message)
        for entry in [entry for entry in catalog if entry.id and entry.id not in wanted]:
            catalog.delete(entry.id)
        catalog.project, catalog.version, catalog.msgid_bugs_address = "dfa-cabinet", "", ""
        catalog.last_translator = catalog.language_team = ""
        with catalog_path(code).open("wb") as target:
            write_po(target, catalog, width=120, sort_output=True, omit_header=False)
        lacking[code] = sum(1 for entry in catalog if entry.id and not entry.string)
    return lacking
