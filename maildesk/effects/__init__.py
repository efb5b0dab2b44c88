"""Writers: the only code that changes tickets and messages for a processed mail."""
