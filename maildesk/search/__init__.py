"""Full-text search over tickets and their mails: the index written beside the data
(`index`), the queries (`query`) and their snippets (`snippet`). Above maildesk.db, beside
maildesk.store; both engines see only maildesk.analyzer's stems."""

from maildesk.search.index import index_message
from maildesk.search.query import TicketHit, search_tickets

__all__ = ["TicketHit", "index_message", "search_tickets"]
