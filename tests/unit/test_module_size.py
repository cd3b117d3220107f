"""No module over 500 lines in autoscaler/, predictor/, overrides/ (the developers' guide): a module that grows past
it is split on its seams, as jobspec/, cli/ (schedule, overrides) and notify/slack/ were."""

from __future__ import annotations

from tests import REPO

LIMIT = 500


def test_no_module_is_over_500_lines() -> None:
    too_long = {}
    for package in ("autoscaler", "predictor", "overrides"):
        for path in (REPO / package).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            name = path.relative_to(REPO).as_posix()
            if lines > LIMIT:
                too_long[name] = lines
    assert too_long == {}, f"split these modules on their seams: {too_long}"
