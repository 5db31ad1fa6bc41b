"""MkDocs hook: shows Sphinx cross-reference roles of docstrings as plain code.

The docstrings mark references the Sphinx way (``:class:`Handler```, ``:meth:`~x.y.advance```),
which mkdocstrings renders as the role's name followed by the code. This drops the role name
and, as Sphinx does for a leading ``~``, shows only the last part of the dotted path.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj|const):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Rewrites the roles on every page, after its Markdown has become HTML.

    Example:
        >>> on_page_content("see :meth:<code>~torchstreamer.core.TimeBuffer.extend</code>")
        'see <code>extend</code>'
    """
    return _ROLE.sub(_plain, html)
