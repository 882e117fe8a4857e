"""The owners' view of the database: Datasette's plugin, metadata, dashboard and launcher."""
