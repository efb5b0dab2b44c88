"""SLA: calendars, policies and the deadlines they give."""
