"""decide_thread on generated facts: what holds whatever the database knows."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from maildesk.domain import TicketFacts
from maildesk.pipeline.subject import SubjectInfo
from maildesk.pipeline.thread import ThreadFacts, decide_thread

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
WINDOW = timedelta(days=30)
SENDERS = st.sampled_from(["client@customer.example", "other@customer.example", ""])
tickets = st.builds(
    TicketFacts, id=st.integers(1, 9), number=st.just(1001),
    status=st.sampled_from(["new", "open", "pending", "resolved", "closed"]),
    reply_token=st.just("abc123"),
    participants=st.frozensets(SENDERS, max_size=2),
    last_activity_at=st.sampled_from([NOW - timedelta(days=d) for d in (0, 29, 30, 31)]))
some = st.lists(tickets, max_size=3).map(tuple)
few = st.just(()) | some          # header evidence is absent more often than not
subjects = st.builds(SubjectInfo, is_reply=st.booleans(), is_forward=st.booleans(),
                     tag_numbers=st.just(()), key=st.sampled_from(["", "printer"]),
                     clean=st.just(""))
facts = st.builds(ThreadFacts, token_ticket=st.none() | st.none() | tickets, referenced=few,
                  tagged=some, same_subject=some, referenced_by=few)
REASONS = {"token", "references", "referenced-by", "tag", "subject", "new", "forward",
           "after-closed"}


def _all(f: ThreadFacts) -> list[TicketFacts]:
    return [*([f.token_ticket] if f.token_ticket else []), *f.referenced, *f.referenced_by,
            *f.tagged, *f.same_subject]


@settings(max_examples=200, deadline=None)
@given(SENDERS, subjects, facts)
def test_a_closed_ticket_is_never_joined_and_only_a_resolved_one_reopens(sender, subject, f):
    d = decide_thread(sender, subject, f, now=NOW, reply_window=WINDOW)
    assert d.reason in REASONS
    joined = [t for t in _all(f) if t.id == d.ticket_id]
    assert (d.ticket_id is None) == (d.reason in ("new", "forward", "after-closed"))
    if d.ticket_id is not None:
        assert any(t.status != "closed" for t in joined)
    assert not d.reopen or any(t.status == "resolved" for t in joined)


@settings(max_examples=200, deadline=None)
@given(SENDERS, subjects, facts)
def test_without_header_evidence_only_a_participant_joins(sender, subject, f):
    d = decide_thread(sender, subject, f, now=NOW, reply_window=WINDOW)
    if f.token_ticket is None and not f.referenced and not f.referenced_by \
            and d.ticket_id is not None:
        assert d.reason in ("tag", "subject")
        assert any(sender and sender in t.participants and t.id == d.ticket_id
                   for t in (*f.tagged, *f.same_subject))


@settings(max_examples=150, deadline=None)
@given(SENDERS, subjects, facts)
def test_a_forward_never_joins_without_header_evidence(sender, subject, f):
    d = decide_thread(sender, subject, f, now=NOW, reply_window=WINDOW)
    if subject.is_forward and f.token_ticket is None and not f.referenced \
            and not f.referenced_by:
        assert (d.ticket_id, d.reason) == (None, "forward")
