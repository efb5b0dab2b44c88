"""decide_thread: the order of PRODUCT.md §4 on plain facts."""

from datetime import datetime, timedelta, timezone

from maildesk.pipeline.subject import analyse_subject
from maildesk.addresses import parse_reply_token
from maildesk.pipeline.thread import ThreadFacts, TicketFacts, decide_thread

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
WINDOW = timedelta(days=30)
CLIENT = "client@customer.example"


def ticket(id=1, status="open", participants=(CLIENT,), active=NOW - timedelta(days=1)):
    return TicketFacts(id=id, number=1000 + id, status=status, reply_token="abc123",
                       participants=frozenset(participants), last_activity_at=active)


def facts(token=None, referenced=(), tagged=(), same_subject=(), referenced_by=(),
          sharing_references=()):
    return ThreadFacts(token, tuple(referenced), tuple(tagged), tuple(same_subject),
                       referenced_by=tuple(referenced_by),
                       sharing_references=tuple(sharing_references))


def decide(subject, f, sender=CLIENT):
    return decide_thread(sender, analyse_subject(subject, "MD"), f, now=NOW, reply_window=WINDOW)


def test_token_wins_over_everything():
    d = decide("Something else", facts(token=ticket(1), referenced=[ticket(2)]))
    assert (d.ticket_id, d.reason) == (1, "token")


def test_references_join_even_without_prefix_or_tag():
    d = decide("Printer", facts(referenced=[ticket(2), ticket(3)]))
    assert (d.ticket_id, d.reason) == (2, "references")


def test_tag_needs_the_sender_to_take_part():
    own = decide("Re: [MD-1001] Printer", facts(tagged=[ticket(1)]))
    assert (own.ticket_id, own.reason) == (1, "tag")
    stranger = decide("Re: [MD-1001] Printer", facts(tagged=[ticket(1, participants=())]),
                      sender="mallory@evil.example")
    assert stranger.ticket_id is None and stranger.reason == "new"
    assert stranger.linked_ticket_id is None


def test_subject_reply_from_participant_of_recent_open_ticket():
    d = decide("RE: Printer", facts(same_subject=[ticket(4)]))
    assert (d.ticket_id, d.reason) == (4, "subject")


def test_subject_without_reply_prefix_opens_new_ticket():
    assert decide("Printer", facts(same_subject=[ticket(4)])).ticket_id is None


def test_subject_match_outside_window_or_closed_or_stranger_opens_new_ticket():
    old = ticket(4, active=NOW - WINDOW - timedelta(hours=1))
    assert decide("Re: Printer", facts(same_subject=[old])).ticket_id is None
    assert decide("Re: Printer", facts(same_subject=[ticket(4, status="closed")])).ticket_id is None
    assert decide("Re: Printer", facts(same_subject=[ticket(4, participants=())])).ticket_id is None


def test_closed_ticket_gives_a_new_linked_ticket():
    d = decide("Re: Printer", facts(referenced=[ticket(5, status="closed")]))
    assert d.ticket_id is None and d.reason == "after-closed" and d.linked_ticket_id == 5


def test_resolved_ticket_is_reopened():
    d = decide("Re: Printer", facts(token=ticket(6, status="resolved")))
    assert d.ticket_id == 6 and d.reopen


def test_forward_without_token_opens_linked_ticket():
    d = decide("Fwd: [MD-1007] Printer", facts(tagged=[ticket(7)]))
    assert d.ticket_id is None and d.reason == "forward" and d.linked_ticket_id == 7


def test_forward_of_a_stranger_is_not_linked():
    d = decide("Fwd: [MD-1007] Printer", facts(tagged=[ticket(7, participants=())]),
               sender="other@x.example")
    assert d.ticket_id is None and d.linked_ticket_id is None


def test_reply_token_parsing():
    support = frozenset({"support@example.com"})
    tok = parse_reply_token("Support+1042-k7f3q@example.com", support)
    assert tok is not None and (tok.number, tok.token) == (1042, "k7f3q")
    assert parse_reply_token("support+billing@example.com", support) is None
    assert parse_reply_token("other+1042-k7f3q@example.com", support) is None
    assert parse_reply_token("support@example.com", support) is None


# -- referenced-by: the reply arrived first (issue 18) ------------------------------------------
def test_message_named_by_a_recorded_reply_joins_its_ticket():
    d = decide("Printer", facts(referenced_by=[ticket(8), ticket(9)]))
    assert (d.ticket_id, d.reason) == (8, "referenced-by") and not d.reopen


def test_referenced_by_needs_no_participant_like_references():
    # Whoever wrote the mail the ticket's reply answers belongs to that thread.
    d = decide("Printer", facts(referenced_by=[ticket(8, participants=())]),
               sender="colleague@customer.example")
    assert (d.ticket_id, d.reason) == (8, "referenced-by")


def test_token_and_own_headers_rank_before_referenced_by():
    by_token = decide("Printer", facts(token=ticket(1), referenced_by=[ticket(8)]))
    assert (by_token.ticket_id, by_token.reason) == (1, "token")
    by_refs = decide("Printer", facts(referenced=[ticket(2)], referenced_by=[ticket(8)]))
    assert (by_refs.ticket_id, by_refs.reason) == (2, "references")


def test_referenced_by_ranks_before_tag_subject_and_forward():
    f = facts(tagged=[ticket(1)], same_subject=[ticket(4)], referenced_by=[ticket(8)])
    for subject in ("Re: [MD-1001] Printer", "RE: Printer", "Fwd: [MD-1001] Printer"):
        d = decide(subject, f)
        assert (d.ticket_id, d.reason) == (8, "referenced-by"), subject


def test_referenced_by_a_closed_ticket_opens_a_linked_one():
    d = decide("Printer", facts(referenced_by=[ticket(8, status="closed")]))
    assert d.ticket_id is None and d.reason == "after-closed" and d.linked_ticket_id == 8


def test_referenced_by_a_resolved_ticket_reopens_it():
    d = decide("Printer", facts(referenced_by=[ticket(8, status="resolved")]))
    assert (d.ticket_id, d.reason) == (8, "referenced-by") and d.reopen


def test_threadfacts_without_referenced_by_still_build():
    f = ThreadFacts(token_ticket=None, referenced=(), tagged=(), same_subject=())
    assert f.referenced_by == () and decide("Printer", f).reason == "new"


# -- shared references: a sibling reply arrived first, the mail both answer has not ----------
def test_a_reply_joins_the_ticket_of_a_sibling_that_names_the_same_mail():
    d = decide("Re: Printer", facts(sharing_references=[ticket(8, participants=())]),
               sender="colleague@customer.example")
    assert (d.ticket_id, d.reason) == (8, "shared-references")


def test_own_headers_and_referenced_by_rank_before_shared_references():
    d = decide("Printer", facts(referenced_by=[ticket(8)], sharing_references=[ticket(9)]))
    assert (d.ticket_id, d.reason) == (8, "referenced-by")
    d = decide("Printer", facts(referenced=[ticket(2)], sharing_references=[ticket(9)]))
    assert (d.ticket_id, d.reason) == (2, "references")
