"""Blog articles: the model and ingestion from RSS/Atom feeds and Markdown files."""
