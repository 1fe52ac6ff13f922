"""ui/state.py's promise, checked: every session-state key (widget keys included) is spelled there and nowhere else."""

import ast
from pathlib import Path

from ui import state

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")),
           *(p for p in sorted((ROOT / "ui").glob("*.py")) if p.name != "state.py")]


def registered_keys() -> list[str]:
    """Every key spelled in ui/state.py: its upper-case names, at module level and in each page's class."""
    spaces = [vars(state), *(vars(c) for c in vars(state).values() if isinstance(c, type) and c.__module__ == state.__name__)]
    return [v for space in spaces for name, v in space.items() if name.isupper() and isinstance(v, str)]


def _spelled(node) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _is_session_state(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "session_state"


def spelled_keys(tree) -> list[int]:
    """Lines where a key is written out: a widget's key="…", st.session_state["…"] or .get/.setdefault/.pop("…")."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # widgets are methods: st.x, col.x
            lines += [node.lineno for kw in node.keywords if kw.arg == "key" and _spelled(kw.value)]
            if _is_session_state(node.func.value) and node.args and _spelled(node.args[0]):
                lines.append(node.lineno)
        if isinstance(node, ast.Subscript) and _is_session_state(node.value) and _spelled(node.slice):
            lines.append(node.lineno)
    return lines


def test_no_file_but_state_spells_a_session_state_key():
    page_keys = {k for k in registered_keys() if "_" in k}  # one-word keys ("prompt") are also ordinary words
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        found += [f"{path.relative_to(ROOT)}:{line} spells a key" for line in spelled_keys(tree)]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} repeats {node.value!r} from ui/state.py"
                  for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in page_keys]
    assert not found, "\n".join(found)


def test_every_key_is_spelled_once():
    keys = registered_keys()
    assert len(keys) > 60 and len(set(keys)) == len(keys), sorted(k for k in keys if keys.count(k) > 1)


def test_the_checker_catches_what_it_should():
    bad = ast.parse('st.slider("x", key="train_x")\nst.session_state["a_b"] = 1\nst.session_state.get(f"{p}_t")\n'
                    'replace(entry, key="run:1@3")\nst.slider("y", key=state.Train.START)')
    assert spelled_keys(bad) == [1, 2, 3]
