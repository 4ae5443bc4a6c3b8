"""One module per use case; each is a class with injected ports and one ``async execute``."""
