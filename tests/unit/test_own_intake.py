"""The mail a daemon stored itself, which its processor claims first on PostgreSQL."""

from maildesk.process.affinity import OwnIntake


def test_own_intake_keeps_ids_oldest_first_and_forgets_what_is_done():
    own = OwnIntake()
    own.add([5, 6, 7])
    own.add([8])
    own.forget([6])
    assert own.snapshot() == [5, 7, 8]


def test_own_intake_past_its_limit_forgets_the_oldest(monkeypatch):
    monkeypatch.setattr(OwnIntake, "LIMIT", 3)
    own = OwnIntake()
    own.add(range(1, 6))
    assert own.snapshot() == [3, 4, 5]
