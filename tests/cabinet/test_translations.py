"""Kazakh and Russian speakers read the whole cabinet in their language: every message a page can show (its
text, the refusals' titles, the words for statuses, kinds and roles) has a translation in both catalogs, and
each translation keeps the message's placeholders."""

import re

import pytest

from dfa.cabinet import messages
from dfa.cabinet.i18n import read_catalog

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("code", ["kk", "ru"])
def test_every_message_the_cabinet_can_show_is_translated(code):
    lacking = messages.untranslated(code)

    assert not lacking, f"{len(lacking)} messages lack a {code} translation (run `dfa catalogs`): {lacking[:20]}"


@pytest.mark.parametrize("code", ["kk", "ru"])
def test_a_translation_keeps_the_placeholders_of_its_message(code):
    mismatched = [
        entry.id for entry in read_catalog(code)
        if entry.id and entry.string and sorted(PLACEHOLDER.findall(entry.id)) != sorted(PLACEHOLDER.findall(entry.string))
    ]

    assert not mismatched


def test_the_messages_include_page_text_navigation_refusal_titles_and_status_words():
    found = messages.messages()

    assert {"Sign in", "Portfolio", "The order is not valid", "client money", "compliance officer"} <= found
