"""What the `maildesk` commands do, as functions that return plain data and never print.

cli.py parses arguments, calls one of these and prints what it returns; tests and a future
HTTP endpoint call the same functions. Each module takes a Context (context.py) and turns a
refusal into an exception of errors.py rather than an exit code.

Modules that need the processor, the IMAP client, the report or the outbound transports
import them inside the function that uses them: `maildesk tickets list` should not pay the
second they cost to import.
"""
