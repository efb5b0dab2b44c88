"""Agents' command lines at the top of a reply's new text (pipeline/commands.py): the grammar
only; lines and agents are checked against the configuration in pipeline/agent.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from maildesk.pipeline.commands import COMMANDS, Command, CommandBlock, parse_commands


def only(text: str) -> Command:
    block = parse_commands(text)
    assert block.errors == ()
    (command,) = block.commands
    return command


# -- each command ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resolve", "close", "pending", "open"])
def test_status_commands_take_no_argument(name):
    assert only(f"#{name}") == Command(name, None)
    block = parse_commands(f"#{name} now please")
    assert block.commands == ()
    assert block.errors == (f"#{name} takes no argument (got 'now please'); write your text on "
                            "the next lines",)


def test_escalate_with_and_without_a_line():
    assert only("#escalate") == Command("escalate", None)
    assert only("#escalate line3") == Command("escalate", "line3")
    block = parse_commands("#escalate line3 vendor")
    assert block.commands == () and len(block.errors) == 1
    assert "#escalate line3 vendor" in block.errors[0] and "one line id" in block.errors[0]


def test_assign_an_address_or_me():
    assert only("#assign carol@example.com") == Command("assign", "carol@example.com")
    assert only("#assign me") == Command("assign", "me")
    block = parse_commands("#assign")
    assert block.commands == ()
    assert block.errors == ("#assign needs an argument: #assign ADDRESS or #assign me",)
    block = parse_commands("#assign carol@example.com dave@example.com")
    assert block.commands == () and "takes one address" in block.errors[0]


@pytest.mark.parametrize("written,kept", [("P1", "P1"), ("p2", "P2"), ("P3", "P3"), ("p4", "P4")])
def test_priority(written, kept):
    assert only(f"#priority {written}") == Command("priority", kept)


@pytest.mark.parametrize("arg", ["P7", "P0", "high", "P2 urgent", "1"])
def test_priority_out_of_range(arg):
    block = parse_commands(f"#priority {arg}")
    assert block.commands == ()
    assert block.errors == (f"#priority {arg}: expected one of P1, P2, P3, P4",)


@pytest.mark.parametrize("name,usage", [("priority", "#priority P1..P4"),
                                        ("category", "#category NAME"), ("tag", "#tag NAME")])
def test_commands_that_need_an_argument(name, usage):
    block = parse_commands(f"#{name}")
    assert block.commands == ()
    assert block.errors == (f"#{name} needs an argument: {usage}",)


def test_category_and_tag_keep_their_argument():
    assert only("#category Кассы и ККТ") == Command("category", "Кассы и ККТ")
    assert only("#tag vip, urgent") == Command("tag", "vip, urgent")


def test_note_with_and_without_a_first_line():
    block = parse_commands("#note\nКлиент звонил, просит ускорить.")
    assert block.commands == (Command("note", None),)
    assert block.text == "Клиент звонил, просит ускорить." and block.internal
    block = parse_commands("#note client called\nwants it today")
    assert block.commands == (Command("note", None),)
    assert block.text == "client called\nwants it today" and block.internal
    block = parse_commands("#note client called")
    assert block.text == "client called" and block.internal


def test_every_note_line_is_kept_in_order():
    block = parse_commands("#note first\n#priority P2\n#note second\nthird")
    assert block.errors == ()
    assert block.text == "first\nsecond\nthird"


def test_without_a_note_the_text_is_for_the_client():
    block = parse_commands("#resolve\nГотово, касса работает.")
    assert not block.internal and block.text == "Готово, касса работает."


# -- the block ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,name,arg", [
    ("#Resolve", "resolve", None), ("#RESOLVE", "resolve", None), ("#priority p2", "priority", "P2"),
    ("#Priority P2", "priority", "P2"), ("#ESCALATE Line3", "escalate", "Line3"),
    ("#Note", "note", None)])
def test_command_names_are_case_insensitive(text, name, arg):
    assert only(text) == Command(name, arg)


def test_several_commands_with_blank_lines_between_then_the_text():
    block = parse_commands("\n#priority P2\n\n#tag vip\n\n\n#resolve\n\nЗдравствуйте, Иван!\n\n"
                           "Касса перезагружена.\n")
    assert block == CommandBlock(
        commands=(Command("priority", "P2"), Command("tag", "vip"), Command("resolve", None)),
        errors=(), text="Здравствуйте, Иван!\n\nКасса перезагружена.", internal=False)


def test_the_block_ends_at_the_first_text_line():
    block = parse_commands("#pending\nЖдём ответа поставщика.\n#resolve\n#tag later")
    assert block.commands == (Command("pending", None),)
    assert block.errors == ()
    assert block.text == "Ждём ответа поставщика.\n#resolve\n#tag later"


def test_a_hash_line_after_text_is_text():
    block = parse_commands("Hello Ivan,\n\n#resolv is not a command here\n#resolve neither")
    assert block == CommandBlock(text="Hello Ivan,\n\n#resolv is not a command here\n"
                                      "#resolve neither")


@pytest.mark.parametrize("text", ["#3 кассы не работают", "#1 priority: the printer", "# Heading",
                                  "#", "##- reply above this line", "#_private"])
def test_hash_and_no_letter_at_the_top_is_text(text):
    assert parse_commands(text) == CommandBlock(text=text)


def test_no_commands_at_all():
    assert parse_commands("Касса работает.\n\nКэрол") == CommandBlock(text="Касса работает.\n\nКэрол")
    assert parse_commands("") == CommandBlock()
    assert parse_commands("\n\n") == CommandBlock()


def test_only_commands_leaves_no_text():
    block = parse_commands("#resolve\n\n")
    assert block.commands == (Command("resolve", None),) and block.text == ""


def test_outlook_bold_and_surrounding_spaces():
    assert only("  *#resolve*  ") == Command("resolve", None)
    assert only("\xa0#priority\xa0P1") == Command("priority", "P1")


def test_punctuation_after_the_word_is_allowed():
    assert only("#resolve.") == Command("resolve", None)
    assert only("#resolve!") == Command("resolve", None)
    assert only("#priority: P2") == Command("priority", "P2")
    assert only("#priority:P2") == Command("priority", "P2")
    assert only("#tag=vip") == Command("tag", "vip")
    block = parse_commands("#note: клиент звонил")
    assert block.commands == (Command("note", None),) and block.text == "клиент звонил"


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("typo", ["resolv", "Resolved", "закрыть", "asign", "prio"])
def test_an_unknown_command_is_an_error_naming_it_not_text(typo):
    block = parse_commands(f"#{typo}\nГотово.")
    assert block.commands == ()
    (error,) = block.errors
    assert error.startswith(f"unknown command #{typo.lower()};")
    assert all(f"#{c}" in error for c in COMMANDS)
    assert block.text == "Готово."


def test_a_malformed_command_line_is_an_error_not_text():
    block = parse_commands("#resolve.now\nГотово.")
    assert block.commands == ()
    (error,) = block.errors
    assert error.startswith("#resolve.now: not a command line")
    assert block.text == "Готово."


@pytest.mark.parametrize("statuses", [("resolve", "pending"), ("close", "open"),
                                      ("resolve", "close", "pending")])
def test_conflicting_statuses(statuses):
    block = parse_commands("\n".join(f"#{s}" for s in statuses))
    assert block.errors == ("conflicting commands: " + ", ".join(f"#{s}" for s in statuses)
                            + " (give one status)",)


def test_the_same_status_twice_is_no_conflict():
    block = parse_commands("#resolve\n#Resolve")
    assert block.errors == ()


@pytest.mark.parametrize("text,error", [
    ("#priority P1\n#priority P3", "conflicting commands: #priority P1, #priority P3 "
                                   "(give one #priority)"),
    ("#assign carol@example.com\n#assign dave@example.com",
     "conflicting commands: #assign carol@example.com, #assign dave@example.com "
     "(give one #assign)"),
    ("#escalate\n#escalate vendor", "conflicting commands: #escalate, #escalate vendor "
                                    "(give one #escalate)"),
    ("#category POS\n#category Network", "conflicting commands: #category pos, #category network "
                                         "(give one #category)"),
])
def test_conflicting_values_of_a_single_valued_command(text, error):
    assert parse_commands(text).errors == (error,)


def test_repeated_identical_values_and_several_tags_are_fine():
    block = parse_commands("#priority P1\n#priority p1\n#assign Carol@example.com\n"
                           "#assign carol@example.com\n#tag vip\n#tag urgent")
    assert block.errors == ()
    assert [c.name for c in block.commands].count("tag") == 2


def test_errors_and_good_commands_are_reported_together():
    block = parse_commands("#resolve\n#priority P9\n#frobnicate\n\nТекст.")
    assert block.commands == (Command("resolve", None),)
    assert len(block.errors) == 2
    assert block.errors[0].startswith("#priority P9")
    assert block.errors[1].startswith("unknown command #frobnicate")
    assert block.text == "Текст."


# -- any text -------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(
    st.sampled_from(["#resolve", "#note x", "#priority p2", "#tag a", "#assign me", "#resolv",
                     "#3 x", "", " ", "*#close*", "#escalate a b", "text", "#note: y"]),
    st.text(max_size=30)), max_size=12).map("\n".join))
def test_parse_commands_never_raises_and_keeps_the_text_after_the_block(text):
    block = parse_commands(text)
    assert isinstance(block, CommandBlock)
    assert all(c.name in COMMANDS for c in block.commands)
    assert block.internal == any(c.name == "note" for c in block.commands)
    if not block.internal:
        # without a #note the text is the input's tail, as written
        assert text.rstrip("\n").endswith(block.text) or block.text == ""
