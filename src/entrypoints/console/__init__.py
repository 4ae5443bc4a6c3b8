"""The ops console: server-rendered pages for operators under /console/ (no JavaScript, no build step)."""
