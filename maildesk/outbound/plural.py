"""Plural forms for the mail templates: `{{ n }} {{ plural(n, one="заявка", few="заявки",
many="заявок") }}`, `{{ plural(n, one="ticket", other="tickets") }}`.

The form is chosen by the CLDR plural rules of the template's language (Babel's
Locale.plural_form): Russian 1, 21 → one; 2-4, 22-24 → few; 0, 5-20, 25-30 → many; English
1 → one, else other. A form the template does not give falls back to `other`, then `many`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from jinja2 import pass_context

CATEGORIES = ("zero", "one", "two", "few", "many", "other")


@lru_cache(maxsize=32)
def _locale(lang: str) -> Locale:
    try:
        return Locale.parse((lang or "en").replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return Locale.parse("en")


def plural_category(n: int | float, lang: str) -> str:
    """CLDR's plural category of `n` in `lang`: zero, one, two, few, many or other."""
    return _locale(lang).plural_form(abs(n))


def plural_word(n: int | float, lang: str, **forms: str) -> str:
    """The form of `forms` (keyed by category) that goes with the number `n` in `lang`."""
    unknown = set(forms) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown plural categories {sorted(unknown)} "
                         f"(CLDR has {', '.join(CATEGORIES)})")
    category = plural_category(n, lang)
    for name in (category, "other", "many"):
        if name in forms:
            return forms[name]
    return next(iter(forms.values()), "")


@pass_context
def plural(ctx: Any, n: int | float, **forms: str) -> str:
    """The template function: the language is the context's `lang` (the template folder's)."""
    return plural_word(n, ctx.get("lang", "en"), **forms)
