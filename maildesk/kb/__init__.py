"""The knowledge base: articles and canned answers (macros) as Markdown files under kb/."""
