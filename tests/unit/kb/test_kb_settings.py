"""The knowledge base is part of the settings: loaded with them (so a SIGHUP reload reloads
it), its problems reported with every other file's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from maildesk.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config"


def test_settings_carry_the_kb(cfg):
    s = load_settings(cfg / "maildesk.yaml")
    assert s.kb.directory == (cfg / "kb").resolve()
    assert len(s.kb) == 8 and s.kb.default_language == s.language == "en"
    assert s.kb.get("password-reset", "ru").title == "Как сбросить пароль"


def test_paths_kb_moves_it_and_a_missing_folder_is_empty(cfg, tmp_path):
    main = cfg / "maildesk.yaml"
    data = yaml.safe_load(main.read_text(encoding="utf-8"))
    shutil.move(cfg / "kb", tmp_path / "articles")
    assert len(load_settings(main).kb) == 0
    data["paths"]["kb"] = "../articles"
    main.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert len(load_settings(main).kb) == 8
    del data["paths"]["kb"]
    main.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_settings(main).kb.directory == (cfg / "kb").resolve()


def test_kb_problems_come_with_the_other_files_problems(cfg):
    (cfg / "kb" / "en" / "broken.md").write_text("---\ntitle: x\nrelated: [nope]\n---\n")
    rules = cfg / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("priority: P1", "priority: P9"),
                     encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg / "maildesk.yaml")
    files = {Path(p.file).name: p for p in err.value.problems}
    assert set(files) == {"rules.yaml", "broken.md"}
    kb = files["broken.md"]
    assert (kb.line, kb.key) == (3, "related[0]") and "no article 'nope'" in kb.message
    assert str(kb) == f"{cfg.resolve() / 'kb/en/broken.md'}:3: related[0]: no article 'nope' " \
                      "(no <lang>/nope.md in the KB)"
