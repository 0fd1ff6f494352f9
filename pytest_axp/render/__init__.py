"""Text layout shared by the library and the CLI."""
