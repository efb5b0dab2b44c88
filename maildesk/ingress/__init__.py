"""Ways mail comes in: the SMTP listener, the pipe (`maildesk ingest`), the IMAP poller."""
